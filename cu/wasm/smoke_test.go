package wasm

import (
	"context"
	"strings"
	"testing"
)

func TestAOSBasics(t *testing.T) {
	m := aos(t)
	in, err := m.Instantiate(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	env := testEnv(t)
	s := &script{t: t}
	r := mustHandle(t, in, s.boot(), env)
	if r.Failed() {
		t.Fatalf("boot failed: %s", r.Error)
	}
	cases := []struct{ code, want string }{
		{"return 1+1", "2"},
		{`print("hi"); return 7 // 2`, "hi\n3"},
		{`return tostring(math.maxinteger) .. " " .. _VERSION`, "9223372036854775807 Lua 5.3"},
		{`return os.date("!%Y-%m-%d %H:%M:%S", 86400*365)`, "1971-01-01 00:00:00"},
		{`return select(2, pcall(error, "x"))`, "x"},
	}
	for _, c := range cases {
		r := mustHandle(t, in, s.eval(c.code), env)
		if r.Failed() {
			t.Fatalf("%s: error %s", c.code, r.Error)
		}
		if got := outputData(t, r); got != c.want {
			t.Errorf("%s = %q, want %q", c.code, got, c.want)
		}
	}
	r = mustHandle(t, in, s.eval(`error("boom")`), env)
	if !r.Failed() || !strings.Contains(string(r.Error), "boom") {
		t.Fatalf("error: %+v", r)
	}
	r = mustHandle(t, in, s.eval(`return 40 + 2`), env)
	// aos warns that the failed message's nonce is missing, as on a reference CU.
	if got := outputData(t, r); !strings.HasSuffix(got, "\n42") {
		t.Fatalf("after error: %q", got)
	}
}
