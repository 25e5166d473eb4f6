//go:build !unix

package cu

import "time"

// processCPU is not available here; the benchmark then reports no CPU times.
func processCPU() time.Duration { return 0 }
