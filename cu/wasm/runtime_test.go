package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/interop"
)

// checkpointScript is the part of the differential script that runs fast.
func checkpointScript(t testing.TB) [][]byte {
	s := diffScript(t)
	return s.msgs[:40]
}

func runAll(t *testing.T, in *Instance, msgs [][]byte, env []byte) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		r := mustHandle(t, in, m, env)
		b, _ := json.Marshal(r)
		out = append(out, string(b))
	}
	return out
}

// TestCheckpointRestore: snapshot after k messages, restore into a fresh
// instance and continue; results and the final memory must equal an
// uninterrupted run's.
func TestCheckpointRestore(t *testing.T) {
	m := aos(t)
	ctx := context.Background()
	env := testEnv(t)
	msgs := checkpointScript(t)

	ref, err := m.Instantiate(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := runAll(t, ref, msgs, env)
	wantSum := sha256.Sum256(snapshot(t, ref))
	ref.Close(ctx)

	for _, k := range []int{1, 7, 16, 33} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			a, err := m.Instantiate(ctx, Config{})
			if err != nil {
				t.Fatal(err)
			}
			got := runAll(t, a, msgs[:k], env)
			img := snapshot(t, a)
			a.Close(ctx)
			b, err := m.Restore(ctx, Config{}, img)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(ctx)
			got = append(got, runAll(t, b, msgs[k:], env)...)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("message %d after restore at %d:\n got %s\nwant %s", i, k, got[i], want[i])
				}
			}
			if sum := sha256.Sum256(snapshot(t, b)); sum != wantSum {
				t.Fatalf("memory after restore at %d differs from the uninterrupted run", k)
			}
		})
	}
}

// TestSealedHost: process code cannot run commands or touch host files.
func TestSealedHost(t *testing.T) {
	m := aos(t)
	ctx := context.Background()
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.txt")
	if err := os.WriteFile(victim, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := m.Instantiate(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	env := testEnv(t)
	s := &script{t: t}
	mustHandle(t, in, s.boot(), env)

	q := func(p string) string { return fmt.Sprintf("%q", filepath.Join(dir, p)) }
	cases := []struct{ code, want string }{
		{`return tostring(os.execute("touch ` + filepath.Join(dir, "pwned-execute") + `"))`, "nil"},
		{`return tostring(os.execute())`, "false"},
		{`local ok, f = pcall(io.popen, "touch ` + filepath.Join(dir, "pwned-popen") + `") return tostring(ok) .. " " .. tostring(f)`, ""},
		{`return tostring(io.open(` + q("pwned-open") + `, "w"))`, "nil"},
		{`return tostring(io.open(` + q("victim.txt") + `, "a"))`, "nil"},
		{`return tostring(io.open(` + q("victim.txt") + `, "r"))`, "nil"},
		{`return tostring(io.open("/etc/passwd"))`, "nil"},
		{`return tostring(os.remove(` + q("victim.txt") + `))`, "nil"},
		{`return tostring(os.rename(` + q("victim.txt") + `, ` + q("moved") + `))`, "nil"},
		{`return tostring(pcall(os.tmpname))`, ""},
		{`return tostring(os.getenv("HOME")) .. tostring(os.getenv("PATH"))`, "nilnil"},
		{`local f = io.output(); return tostring(io.write("to the void\n"))`, ""},
	}
	for _, c := range cases {
		r := mustHandle(t, in, s.eval(c.code), env)
		if r.Failed() {
			t.Logf("%s -> error %s", c.code, r.Error)
			continue
		}
		got := outputData(t, r)
		if c.want != "" && got != c.want {
			t.Errorf("%s = %q, want %q", c.code, got, c.want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("process changed the host directory: %v", names)
	}
	if b, _ := os.ReadFile(victim); string(b) != "original" {
		t.Fatalf("victim file changed: %q", b)
	}
}

// TestDeadline: a runaway loop ends with a deadline error, the process
// continues from its previous state, and other instances are not disturbed.
func TestDeadline(t *testing.T) {
	m := aos(t)
	ctx := context.Background()
	env := testEnv(t)

	other, err := m.Instantiate(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	so := &script{t: t}
	mustHandle(t, other, so.boot(), env)

	in, err := m.Instantiate(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	s := &script{t: t}
	mustHandle(t, in, s.boot(), env)
	mustHandle(t, in, s.eval(`X = 41; return X`), env)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var otherErr error
	otherCount := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := other.Handle(ctx, so.eval(`return 6 * 7`), env)
			if err == nil && outputData(t, r) != "42" {
				err = fmt.Errorf("other instance answered %s", r.Output)
			}
			if err != nil {
				otherErr = err
				return
			}
			otherCount++
		}
	}()

	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := in.Handle(dctx, s.eval(`X = 0; while true do end`), env)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("runaway loop: result %+v, err %v; want a deadline error", r, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("deadline took %v", d)
	}
	close(stop)
	wg.Wait()
	if otherErr != nil || otherCount == 0 {
		t.Fatalf("other instance during the loop: %d messages, err %v", otherCount, otherErr)
	}
	r = mustHandle(t, in, s.eval(`return X + 1`), env)
	if got := outputData(t, r); !strings.HasSuffix(got, "42") {
		t.Fatalf("after the deadline X + 1 = %q (state not rolled back)", got)
	}
}

// TestMemoryLimit: growth stops at Config.MemoryLimit; the failing message
// is an error and the next one runs normally.
func TestMemoryLimit(t *testing.T) {
	m := aos(t)
	ctx := context.Background()
	env := testEnv(t)
	const limit = 160 << 20
	in, err := m.Instantiate(ctx, Config{MemoryLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	s := &script{t: t}
	mustHandle(t, in, s.boot(), env)
	r := mustHandle(t, in, s.eval(`local s = string.rep("x", 100 * 1024 * 1024); return #s`), env)
	if !r.Failed() || !strings.Contains(string(r.Error), "not enough memory") {
		t.Fatalf("100 MiB string under a 160 MiB limit: %s / %s", r.Output, r.Error)
	}
	if got := in.MemorySize(); got > limit {
		t.Fatalf("memory %d exceeds limit %d", got, limit)
	}
	r = mustHandle(t, in, s.eval(`return #string.rep("y", 1024 * 1024)`), env)
	if got := outputData(t, r); !strings.HasSuffix(got, "1048576") {
		t.Fatalf("after the failure: %q %s", got, r.Error)
	}

	if _, err := m.Instantiate(ctx, Config{MemoryLimit: 16 << 20}); err == nil {
		t.Fatal("a limit below the initial memory was accepted")
	}
}

type fakeWeave struct {
	data   map[string][]byte
	broken bool
}

func (f *fakeWeave) Data(_ context.Context, id string, height int64) (Blob, error) {
	if f.broken {
		return nil, errors.New("gateway unreachable")
	}
	if b, ok := f.data[id]; ok {
		return bytes.NewReader(b), nil
	}
	return nil, ErrNotFound
}

func (f *fakeWeave) Tx(_ context.Context, id string) ([]byte, error) {
	return []byte(`{"id":"` + id + `","ownerAddress":"X"}`), nil
}

func (f *fakeWeave) Block(_ context.Context, h int64) ([]byte, error) {
	return []byte(fmt.Sprintf(`{"height":%d}`, h)), nil
}

func TestWeaveDrive(t *testing.T) {
	m := aos(t)
	ctx := context.Background()
	env := testEnv(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	drive := &fakeWeave{data: map[string][]byte{
		"DATA_ID": []byte("line one\nline two\n"),
		"BIG":     big,
	}}
	in, err := m.Instantiate(ctx, Config{Arweave: drive})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	s := &script{t: t}
	mustHandle(t, in, s.boot(), env)
	cases := []struct{ code, want string }{
		{`local f = io.open("/data/DATA_ID"); local n = f:seek("end"); f:seek("set"); local d = f:read(n); f:close(); return n .. ":" .. d`, "18:line one\nline two\n"},
		{`local f = io.open("/data/DATA_ID"); local a = f:read("l"); local b = f:read("l"); return a .. "|" .. b`, "line one|line two"},
		{`local f = io.open("/data/BIG"); local n = f:seek("end"); f:seek("set", 16 * 999); return n .. " " .. f:read(16)`, "160000 0123456789abcdef"},
		// aos On-Boot: a read right after seek("end") starts at offset 0,
		// as in the reference drive.
		{`local f = io.open("/data/DATA_ID"); local d = f:read(f:seek("end")); f:close(); return d`, "line one\nline two\n"},
		{`return tostring(io.open("/data/MISSING"))`, "nil"},
		{`local f = io.open("/tx/TXID"); local n = f:seek("end"); f:seek("set"); return f:read(n)`, `{"id":"TXID","ownerAddress":"X"}`},
		{`local f = io.open("/block/1234"); local n = f:seek("end"); f:seek("set"); return f:read(n)`, `{"height":1234}`},
		{`return tostring(io.open("/data/DATA_ID", "w"))`, "nil"},
		{`return tostring(io.open("/other/DATA_ID"))`, "nil"},
	}
	for _, c := range cases {
		r := mustHandle(t, in, s.eval(c.code), env)
		if got := outputData(t, r); got != c.want {
			t.Errorf("%s = %q (error %s), want %q", c.code, got, r.Error, c.want)
		}
	}
	mustHandle(t, in, s.eval(`Y = "kept"`), env)
	drive.broken = true
	if _, err := in.Handle(ctx, s.eval(`Y = "lost"; return io.open("/data/DATA_ID")`), env); err == nil || !strings.Contains(err.Error(), "gateway unreachable") {
		t.Fatalf("gateway failure: err = %v", err)
	}
	drive.broken = false
	r := mustHandle(t, in, s.eval(`return Y`), env)
	if got := outputData(t, r); !strings.HasSuffix(got, "kept") {
		t.Fatalf("after a drive failure Y = %q", got)
	}
}

func TestUnsupported(t *testing.T) {
	ctx := context.Background()
	for _, f := range []string{FormatEmscripten, "wasm64-unknown-emscripten-draft_2024_02_15-metering", "wasm32-wasi", ""} {
		_, err := Compile(ctx, []byte("\x00asm\x01\x00\x00\x00"), Options{Format: f})
		var ue *UnsupportedError
		if !errors.Is(err, ErrUnsupported) || !errors.As(err, &ue) || ue.Kind != "Module-Format" {
			t.Errorf("format %q: %v", f, err)
		}
	}
	_, err := Compile(ctx, []byte("\x00asm\x01\x00\x00\x00"), Options{Format: FormatEmscripten4, Extensions: []string{"Sqlite"}})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("extension: %v", err)
	}
	_, err = Compile(ctx, []byte("not wasm"), Options{Format: FormatEmscripten4})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("garbage binary: %v", err)
	}
	// wasm64 is lowered to memory32: a binary without a memory64 memory is
	// refused as a binary (by the lowering), not as a format.
	_, err = Compile(ctx, []byte("\x00asm\x01\x00\x00\x00"), Options{Format: FormatWasm64})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Kind != "binary" || !strings.Contains(err.Error(), "lower64") {
		t.Errorf("wasm64 without memory64: %v", err)
	}
	// A valid module without the emscripten exports.
	_, err = Compile(ctx, []byte("\x00asm\x01\x00\x00\x00"), Options{Format: FormatEmscripten4})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("empty module: %v", err)
	}
}

// BenchmarkPing measures warm messages per second on one aos process with a
// Ping handler that replies.
func BenchmarkPing(b *testing.B) { benchPing(b, aos(b)) }

// BenchmarkPingUninterruptible is BenchmarkPing without wazero's termination
// checks (Options.Uninterruptible).
func BenchmarkPingUninterruptible(b *testing.B) {
	m, err := Compile(context.Background(), interop.WaoModule(b, aosFile), Options{
		Format:          FormatEmscripten4,
		Extensions:      []string{ExtensionWeaveDrive},
		CacheDir:        filepath.Join(interop.CacheDir(b), "wazero"),
		Uninterruptible: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	benchPing(b, m)
}

func benchPing(b *testing.B, m *Module) {
	ctx := context.Background()
	env := testEnv(b)
	in, err := m.Instantiate(ctx, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close(ctx)
	s := &script{t: b}
	mustHandle(b, in, s.boot(), env)
	mustHandle(b, in, s.eval(`Handlers.add("ping", "Ping", function (m) m.reply({ Data = "pong" }) end)`), env)
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = s.send(otherAddr, "", tag{"Action", "Ping"})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := mustHandle(b, in, msgs[i], env)
		if r.Failed() || len(r.Messages) < 10 {
			b.Fatalf("ping: %s %s", r.Error, r.Messages)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
