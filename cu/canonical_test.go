package cu

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func TestCanonical(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// RFC 8785 §3.2.2 and §3.2.3 examples.
		{`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			`{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","` + "\ufb33" + `":"Hebrew Letter Dalet With Dagesh"}`},
		{` { "b" : [ 1 , 2 ] , "a" : { } } `, `{"a":{},"b":[1,2]}`},
		{`-0`, `0`},
		{`1e21`, `1e+21`},
		{`123456789012345678901`, `123456789012345680000`},
		{`0.000001`, `0.000001`},
		{`0.0000001`, `1e-7`},
		{`"\b\f\t\u0001"`, `"\b\f\t\u0001"`},
	} {
		got, err := Canonical([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Canonical(%s)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{``, `{`, `[1,]`, `1 2`, `1e999`, `{"a":1}x`} {
		if _, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) = nil error", bad)
		}
	}
	deep := bytes.Repeat([]byte("["), maxCanonicalDepth+2)
	deep = append(deep, bytes.Repeat([]byte("]"), maxCanonicalDepth+2)...)
	if _, err := Canonical(deep); err == nil {
		t.Error("no error for JSON nested deeper than the bound")
	}
}

func TestESNumber(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{
		{1, "1"}, {-1.5, "-1.5"}, {100, "100"}, {1e20, "100000000000000000000"}, {1e21, "1e+21"},
		{1.2345e-7, "1.2345e-7"}, {math.MaxFloat64, "1.7976931348623157e+308"}, {5e-324, "5e-324"}, {0.1, "0.1"},
		{9007199254740993, "9007199254740992"},
	} {
		if got := esNumber(c.f); got != c.want {
			t.Errorf("esNumber(%v) = %s, want %s", c.f, got, c.want)
		}
	}
}

// FuzzCanonical checks that the canonical form is valid JSON, equal in
// value to the input, and a fixed point.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"Messages":[],"Output":{"data":"x","prompt":"aos> "},"GasUsed":0}`, `[1.5e300,-0.0,"\u00e9"]`, `{"b":1,"a":[true,null]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Canonical(b)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not JSON: %s", c)
		}
		c2, err := Canonical(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not a fixed point: %s → %s (%v)", c, c2, err)
		}
	})
}
