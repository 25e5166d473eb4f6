package main

import (
	"reflect"
	"testing"

	"github.com/aonode/aonode/cu"
)

func TestParseCUPrices(t *testing.T) {
	for _, c := range []struct {
		in   string
		cus  int
		want []cu.Prices
		err  bool
	}{
		{"", 3, nil, false},
		{"0,0", 3, nil, false}, // all free: no pricing, no ledger needed
		{"5,1,3", 3, []cu.Prices{{Message: 5}, {Message: 1}, {Message: 3}}, false},
		{" 2 ", 3, []cu.Prices{{Message: 2}}, false},
		{"1,2,3,4", 3, nil, true},
		{"-1", 1, nil, true},
		{"x", 1, nil, true},
	} {
		got, err := parseCUPrices(c.in, c.cus)
		if (err != nil) != c.err || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %v %v, want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}
