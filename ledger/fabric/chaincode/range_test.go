package chaincode

import "testing"

func TestRangePrefix(t *testing.T) {
	tests := []struct {
		start, end, want string
		ok               bool
	}{
		{"lic/r1/", "lic/r10", "lic/r1/", true},
		{"feas/acme/18e4", "feas/acme0", "feas/acme/", true},
		{"feas/acme/18e4/x", "feas/acme0", "feas/acme/", true},
		{"feas/acme/18e4", "feas/acme/2", "", false},
		{"lic/r1", "lic/r2", "", false},
		{"lic/r1/", "lic/r1/z", "", false},
	}
	for _, tt := range tests {
		got, ok := rangePrefix(tt.start, tt.end)
		if got != tt.want || ok != tt.ok {
			t.Errorf("rangePrefix(%q, %q) = %q, %v, want %q, %v", tt.start, tt.end, got, ok, tt.want, tt.ok)
		}
	}
}
