package s3test

import (
	"os/exec"
	"syscall"
)

// setParentDeath kills the server when the test binary dies, so a crashed or
// timed-out test leaves no server behind.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
