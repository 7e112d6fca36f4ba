package chaincode

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/medx/medx/ledger"
)

func TestKeys(t *testing.T) {
	tests := []struct {
		key, composite string
	}{
		{"meta/operator", "\x00meta\x00operator\x00"},
		{"part/acme-pharma", "\x00part\x00acme-pharma\x00"},
		{"lic/req-0011223344556677/lic-8899aabbccddeeff", "\x00lic\x00req-0011223344556677\x00lic-8899aabbccddeeff\x00"},
	}
	for _, tc := range tests {
		ck, ok := CompositeKey(tc.key)
		if !ok || ck != tc.composite {
			t.Errorf("CompositeKey(%q) = %q, %v; want %q", tc.key, ck, ok, tc.composite)
		}
		k, err := ContractKey(ck)
		if err != nil || k != tc.key {
			t.Errorf("ContractKey(%q) = %q, %v; want %q", ck, k, err, tc.key)
		}
	}
	if _, ok := CompositeKey("part/a\x00b"); ok {
		t.Error(`CompositeKey("part/a\x00b") is valid, want refused`)
	}
	if _, err := ContractKey("plain"); err == nil {
		t.Error(`ContractKey("plain") = nil error, want refused`)
	}
}

// TestFunctions checks that the chaincode exposes exactly the contract's
// functions, state-changing ones in the default contract and reads in the
// query contract.
func TestFunctions(t *testing.T) {
	methods := func(v any) []string {
		var out []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			if m.Type.NumIn() == 2 && m.Type.In(1).String() == "contractapi.TransactionContextInterface" {
				out = append(out, m.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	want := ledger.InvokeFunctions()
	slices.Sort(want)
	if got := methods(&Invokes{}); !slices.Equal(got, want) {
		t.Errorf("Invokes methods = %v, want %v", got, want)
	}
	want = ledger.QueryFunctions()
	slices.Sort(want)
	if got := methods(&Queries{}); !slices.Equal(got, want) {
		t.Errorf("Queries methods = %v, want %v", got, want)
	}
	cc, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if cc.DefaultContract != "medx" {
		t.Errorf("default contract = %q, want medx", cc.DefaultContract)
	}
	if _, err := json.Marshal(Event{Fn: ledger.FnMint}); err != nil {
		t.Fatal(err)
	}
}

// FuzzKeys checks that CompositeKey and ContractKey are inverse on every
// key CompositeKey accepts.
func FuzzKeys(f *testing.F) {
	for _, k := range []string{"meta/operator", "lic/req-1/lic-2", "part/", "a", "x//y", "é/ü"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ck, ok := CompositeKey(key)
		if !ok {
			return
		}
		back, err := ContractKey(ck)
		if err != nil || back != key {
			t.Fatalf("ContractKey(CompositeKey(%q)) = %q, %v", key, back, err)
		}
	})
}
