package cu

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// DefaultMemoryBudget is a quarter of the machine's memory (MemTotal of
// /proc/meminfo), at least 1 GiB; 1 GiB where that cannot be read.
func DefaultMemoryBudget() int64 {
	const floor = 1 << 30
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return floor
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return floor
			}
			return max(floor, kb<<10/4)
		}
	}
	return floor
}

// Fuel defaults, in the units of wasm.Config.FuelLimit. The aos Lua
// interpreter burns about 400e9-600e9 a second on this project's 2-core test
// machine (BenchmarkFuelRate in cu/wasm: every loop iteration of the
// interpreter is charged its whole loop body), so a message may compute for
// about 30 s of aos there, as the reference's wall clock allows, and a
// dry-run for about 3 s; a faster machine finishes the same work sooner and
// gives the same result. Code that burns fuel more slowly than Lua runs
// longer within the same limit; the wall-clock guard protects the node.
const (
	DefaultMessageFuel int64 = 20e12
	DefaultDryRunFuel  int64 = 2e12
)
