package hb

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/mu"
)

func TestLocationsResolve(t *testing.T) {
	var logs bytes.Buffer
	l := NewLocations("http://su", []string{"node"}, false, slog.New(slog.NewTextHandler(&logs, nil)))
	strict := NewLocations("http://su", []string{"node"}, true, nil)
	notFound := errors.New("wrapped: " + mu.ErrNotFound.Error())
	down := errors.New("gateway down")
	for _, tc := range []struct {
		name    string
		l       *Locations
		addr    string
		err     error
		wantURL string
		wantErr error
	}{
		{"a record wins", l, "node", nil, "http://elsewhere", nil},
		{"node address", strict, "node", mu.ErrNotFound, "http://su", nil},
		{"foreign, lenient", l, "foreign", mu.ErrNotFound, "http://su", nil},
		{"foreign, strict", strict, "foreign", mu.ErrNotFound, "", mu.ErrNotFound},
		{"gateway failure passes", l, "foreign", down, "", down},
		{"unwrapped text is not not-found", l, "foreign", notFound, "", notFound},
	} {
		u, _, err := tc.l.resolve(tc.addr, map[bool]string{true: "http://elsewhere"}[tc.err == nil], time.Hour, tc.err, mu.ErrNotFound)
		if u != tc.wantURL || !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %q, %v; want %q, %v", tc.name, u, err, tc.wantURL, tc.wantErr)
		}
	}
	l.resolve("foreign", "", 0, mu.ErrNotFound, mu.ErrNotFound)
	if n := strings.Count(logs.String(), "scheduler=foreign"); n != 1 {
		t.Errorf("logged the foreign scheduler %d times, want once:\n%s", n, logs.String())
	}
	if _, _, err := l.resolve("x", "", 0, cu.ErrNotFound, cu.ErrNotFound); err != nil {
		t.Errorf("the CU's not-found: %v", err)
	}
}
