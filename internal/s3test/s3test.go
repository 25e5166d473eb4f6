// Package s3test starts a real S3-compatible server on loopback for tests:
// versitygw (Apache-2.0, `go install github.com/versity/versitygw/cmd/versitygw`)
// over a temporary directory. It is a separate process, not a library used in
// process, so the code under test speaks S3 over HTTP exactly as it does to a
// production object store. .ci/run installs the binary into the cache
// directory this package looks in; a test skips when it is absent, and fails
// instead when AONODE_REQUIRE_S3 is set.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Version is the versitygw release .ci/run installs.
const Version = "v1.8.0"

// Access and Secret are the root keys of every test server.
const (
	Access = "aonodetest"
	Secret = "aonodetestsecret"
)

// Binary finds the server: $AONODE_S3_SERVER, versitygw on PATH, or the copy
// .ci/run installs in the user cache directory (…/aonode/bin). "" when none.
func Binary() string {
	if p := os.Getenv("AONODE_S3_SERVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if d, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(d, "aonode", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Server is a running S3 server.
type Server struct {
	// Endpoint is host:port on loopback.
	Endpoint string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// URL is an objstore URL for bucket (created on first use by objstore.Open).
func (s *Server) URL(bucket string) string {
	return fmt.Sprintf("http://%s:%s@%s/%s", Access, Secret, s.Endpoint, bucket)
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// Start starts a server for the test, stopped when the test ends. It skips
// the test when no server binary is installed, unless AONODE_REQUIRE_S3 is set.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "no S3 server: install it with `GOBIN=$HOME/.cache/aonode/bin go install github.com/versity/versitygw/cmd/versitygw@" + Version + "` (as .ci/run does)"
		if os.Getenv("AONODE_REQUIRE_S3") != "" {
			t.Fatal(msg + "; AONODE_REQUIRE_S3 is set")
		}
		t.Skip(msg + "; set AONODE_REQUIRE_S3=1 to fail instead")
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(bin, dir)
		if err == nil {
			t.Cleanup(s.Kill)
			return s
		}
		lastErr = err
	}
	t.Fatalf("s3test: %v", lastErr)
	return nil
}

func start(bin, dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	root, meta := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, d := range []string{root, meta} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin, "--port", addr, "--access", Access, "--secret", Secret, "--quiet",
		"posix", "--sidecar", meta, root)
	cmd.Stdout, cmd.Stderr = nil, nil
	setParentDeath(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{Endpoint: addr, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return s, nil // any answer (403 without a signature) means it serves
		}
		select {
		case <-s.exited:
			return nil, errors.New("the S3 server exited at start (port taken?)")
		case <-ctx.Done():
			s.Kill()
			return nil, fmt.Errorf("the S3 server did not answer on %s", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
