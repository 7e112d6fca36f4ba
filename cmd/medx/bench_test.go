package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchQuery runs `medx bench query` on a small cohort: one JSON object
// with the figures, and the noise-off pass matching the plaintext.
func TestBenchQuery(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"bench", "query", "--patients", "3000", "--custodians", "2", "--runs", "2", "--seed", "3", "--dir", t.TempDir()}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("medx bench query: %v\n%s", err, errb.String())
	}
	if n := strings.Count(strings.TrimSpace(out.String()), "\n"); n != 0 {
		t.Errorf("output has %d lines, want one JSON object:\n%s", n+1, out.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	for _, k := range []string{"plaintext_ms", "encrypted_ms", "ratio", "crypto_ms", "message_bytes", "scan_ms"} {
		v, ok := res[k].(float64)
		if !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, res[k])
		}
	}
	if res["match"] != true {
		t.Errorf("match = %v: the noise-off pass differs from the plaintext", res["match"])
	}
	if res["patients"] != 3000.0 || res["custodians"] != 2.0 || res["key_holders"] != 3.0 || res["slots"] != 28.0 {
		t.Errorf("result %v does not describe the run", res)
	}
	// Both paths scan the same rows: the encrypted one costs more.
	if res["encrypted_ms"].(float64) <= res["scan_ms"].(float64) {
		t.Errorf("encrypted %v ms not above its own scans %v ms", res["encrypted_ms"], res["scan_ms"])
	}
	steps, ok := res["crypto_steps"].([]any)
	if !ok || len(steps) != 7 {
		t.Errorf("crypto_steps = %v, want the 6 protocol steps and the sponsor's decryption", res["crypto_steps"])
	}
}

func TestBenchRefusesBadInput(t *testing.T) {
	for name, args := range map[string][]string{
		"no subcommand":           {"bench"},
		"unknown benchmark":       {"bench", "ledger"},
		"query: no custodians":    {"bench", "query", "--custodians", "0"},
		"query: too many":         {"bench", "query", "--custodians", "64"},
		"query: too few patients": {"bench", "query", "--patients", "5", "--custodians", "2"},
		"query: no runs":          {"bench", "query", "--runs", "0"},
		"query: stray argument":   {"bench", "query", "extra"},
		"api: too few patients":   {"bench", "api", "--patients", "5"},
		"api: no requests":        {"bench", "api", "--requests", "0"},
		"api: no clients":         {"bench", "api", "--concurrency", "0"},
		"api: no time":            {"bench", "api", "--max-time", "0s"},
		"api: stray argument":     {"bench", "api", "extra"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := run(t.Context(), args, func(string) string { return "" }, &out, &errb); err == nil {
				t.Errorf("run(%q) succeeded, want an error", args)
			}
			if out.Len() > 0 {
				t.Errorf("run(%q) printed %q", args, out.String())
			}
		})
	}
}

// TestBenchAPI runs `medx bench api` briefly: one JSON object with the
// read and accept figures and their baselines, and exactly as many
// licences on the ledger as accepts answered.
func TestBenchAPI(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"bench", "api", "--patients", "400", "--requests", "100", "--accepts", "5", "--concurrency", "4", "--dir", t.TempDir() + "/d"}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("medx bench api: %v\n%s", err, errb.String())
	}
	if n := strings.Count(strings.TrimSpace(out.String()), "\n"); n != 0 {
		t.Errorf("output has %d lines, want one JSON object:\n%s", n+1, out.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	for _, k := range []string{"rps", "p50_ms", "p99_ms", "baseline_rps", "ratio", "accept_rps", "accept_p50_ms", "accept_baseline_rps", "accept_ratio", "response_bytes"} {
		if v, ok := res[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, res[k])
		}
	}
	if res["requests"] != 100.0 || res["accepts"] != 5.0 || res["licences"] != 5.0 {
		t.Errorf("result %v: want 100 reads, 5 accepts and 5 licences", res)
	}
}
