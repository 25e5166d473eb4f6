package wasm

import "testing"

func TestStrftime(t *testing.T) {
	v, _ := gmtime(1709209800) // Thu 2024-02-29 12:30:00 UTC
	v.zone = "UTC"
	cases := []struct{ f, want string }{
		{"%Y-%m-%d %H:%M:%S", "2024-02-29 12:30:00"},
		{"%c", "Thu Feb 29 12:30:00 2024"},
		{"%a %A %b %B %j %U %W %V %G %g %u %w %e %C %y %p %I", "Thu Thursday Feb February 060 08 09 09 2024 24 4 4 29 20 24 PM 12"},
		{"%Z %z %%Y %n%t", "UTC +0000 %Y \n\t"},
		{"%D|%F|%T|%R|%r|%x|%X|%h", "02/29/24|2024-02-29|12:30:00|12:30|12:30:00 PM|02/29/24|12:30:00|Feb"},
	}
	for _, c := range cases {
		if got := strftime(c.f, &v); got != c.want {
			t.Errorf("strftime(%q) = %q, want %q", c.f, got, c.want)
		}
	}
	// mktime normalises like JS Date: 2023, month index 13, day 35 is 2024-03-06.
	m := tm{year: 123, mon: 13, mday: 35}
	if got := mktime(&m); got != 1709683200 || m.mon != 2 || m.mday != 6 || m.year != 124 {
		t.Errorf("mktime = %d %+v", got, m)
	}
}

// FuzzStrftime: process code controls the pattern and the tm fields; the
// only acceptable panic is the glue's TypeError for out-of-range names.
func FuzzStrftime(f *testing.F) {
	f.Add("%c %G %V %z %j", int32(2), int32(1), int32(124), int32(4), int32(59), int32(-3600))
	f.Fuzz(func(t *testing.T, p string, mday, mon, year, wday, yday, gmtoff int32) {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(errBadTm); !ok {
					t.Fatalf("panic %v", r)
				}
			}
		}()
		v := tm{mday: mday, mon: mon, year: year, wday: wday, yday: yday, gmtoff: gmtoff}
		strftime(p, &v)
		mktime(&v)
	})
}
