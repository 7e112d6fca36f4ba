package ledger_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/ledger"
)

func collect(t *testing.T, st ledger.State, start, end string) []string {
	t.Helper()
	var out []string
	err := st.Range(start, end, func(k string, v []byte) (bool, error) {
		out = append(out, k+"="+string(v))
		return true, nil
	})
	if err != nil {
		t.Fatalf("Range(%q, %q): %v", start, end, err)
	}
	return out
}

func TestMemState(t *testing.T) {
	m := ledger.NewMemState()
	for _, k := range []string{"b/2", "a/1", "b/1", "c/1", "b/3"} {
		if err := m.Put(k, []byte(strings.ToUpper(k))); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		start, end string
		want       []string
	}{
		{"all", "", "", []string{"a/1=A/1", "b/1=B/1", "b/2=B/2", "b/3=B/3", "c/1=C/1"}},
		{"prefix", "b/", "b0", []string{"b/1=B/1", "b/2=B/2", "b/3=B/3"}},
		{"end exclusive", "a", "b/2", []string{"a/1=A/1", "b/1=B/1"}},
		{"empty range", "d", "e", nil},
		{"open end", "b/3", "", []string{"b/3=B/3", "c/1=C/1"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, collect(t, m, tc.start, tc.end)); diff != "" {
			t.Errorf("%s: Range(%q, %q) (-want +got):\n%s", tc.name, tc.start, tc.end, diff)
		}
	}

	c := m.Clone()
	_ = m.Delete("b/2")
	_ = m.Delete("absent")
	_ = m.Put("b/2", []byte("again"))
	_ = m.Delete("a/1")
	_ = m.Put("a/0", []byte("new"))
	want := []string{"a/0=new", "b/1=B/1", "b/2=again", "b/3=B/3", "c/1=C/1"}
	if diff := cmp.Diff(want, collect(t, m, "", "")); diff != "" {
		t.Errorf("after deletes and puts (-want +got):\n%s", diff)
	}
	if v, _ := m.Get("a/1"); v != nil {
		t.Errorf("Get(deleted) = %q, want nil", v)
	}
	if m.Len() != 5 || c.Len() != 5 || m.Equal(c) {
		t.Errorf("Len = %d, clone Len = %d, Equal = %v; want 5, 5, false", m.Len(), c.Len(), m.Equal(c))
	}
	if v, _ := c.Get("b/2"); string(v) != "B/2" {
		t.Errorf("clone Get(b/2) = %q, want the value at cloning", v)
	}

	// Values are copies: changing what Get returned changes nothing.
	v, _ := m.Get("c/1")
	v[0] = 'X'
	if w, _ := m.Get("c/1"); string(w) != "C/1" {
		t.Errorf("Get after changing a returned value = %q", w)
	}
	// Stopping early.
	n := 0
	_ = m.Range("", "", func(string, []byte) (bool, error) { n++; return n < 2, nil })
	if n != 2 {
		t.Errorf("Range visited %d keys after fn returned false, want 2", n)
	}
}
