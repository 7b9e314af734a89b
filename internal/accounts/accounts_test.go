package accounts

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestParseList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "b,a", want: []string{"a", "b"}},
		{in: "default, eu-1,default", want: []string{"", "eu-1"}},
		{in: "Prod", bad: true},
		{in: "a,,b", bad: true},
		{in: "-a", bad: true},
	} {
		got, err := ParseList(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseList(%q) error = %v, want ErrInvalid", tc.in, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseList(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseShard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Shard
		bad  bool
	}{
		{in: "", want: Shard{}},
		{in: "0/4", want: Shard{0, 4}},
		{in: " 3/4 ", want: Shard{3, 4}},
		{in: "0/1", want: Shard{0, 1}},
		{in: "4/4", bad: true},
		{in: "-1/4", bad: true},
		{in: "1/0", bad: true},
		{in: "1", bad: true},
		{in: "a/b", bad: true},
	} {
		got, err := ParseShard(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// TestShardsPartition: for any n, every account is in exactly one shard,
// and the hash is the documented one (pinned values: changing the hash
// would move accounts between pods of a running deployment).
func TestShardsPartition(t *testing.T) {
	t.Parallel()
	var all []string
	for i := range 200 {
		all = append(all, fmt.Sprintf("acct-%03d", i))
	}
	all = append(all, "")
	for _, n := range []int{1, 2, 3, 4, 7, 16} {
		seen := map[string]int{}
		for i := range n {
			for _, a := range Select(all, nil, Shard{i, n}) {
				seen[a]++
			}
		}
		for _, a := range all {
			if seen[a] != 1 {
				t.Errorf("n=%d: account %q is in %d shards", n, a, seen[a])
			}
		}
	}
	if got := Hash(""); got != Hash("default") || got != 0x933b5bde {
		t.Errorf("Hash(default) = %#x, want 0x933b5bde (FNV-1a of \"default\")", got)
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	all := []string{"", "a", "b", "c"}
	if got := Select(all, []string{"b", "", "zz"}, Shard{}); !slices.Equal(got, []string{"", "b"}) {
		t.Errorf("Select with a list = %q", got)
	}
	if got := Select(all, nil, Shard{}); !slices.Equal(got, all) {
		t.Errorf("Select all = %q", got)
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{"a": true, "prod-eu.1_x": true, "default": false, "": false,
		"A": false, "_a": false, string(make([]byte, 64)): false} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}
