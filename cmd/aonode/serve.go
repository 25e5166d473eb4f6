package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/aonode/aonode/internal/httpx"
)

// envOr returns the environment variable, or def when it is unset.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// logger writes warnings and errors to stderr, or everything with verbose.
func logger(verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// listen opens the TCP listener first, so that a taken port is reported before
// anything else starts.
func listen(host string, port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on port %d: %w\n  fix: stop the program that has it, or pick another with --port", port, err)
		}
		return nil, fmt.Errorf("listen on port %d: %w", port, err)
	}
	return ln, nil
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully: requests
// in flight finish (up to 10 s) before it returns.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := httpx.NewServer(h)
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	hs.BaseContext = func(net.Listener) context.Context { return reqCtx }
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := httpx.Shutdown(sctx, cancelRequests, hs); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
