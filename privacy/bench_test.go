package privacy

import (
	"math/rand/v2"
	"testing"
	"time"
)

// records is a columnar synthetic patient table for the benchmark: what a
// custodian scans before it encrypts.
type records struct {
	age      []int32
	male     []bool
	diabetic []bool
	sbp      []float64
	hba1c    []float64 // NaN: not measured
	bmi      []float64
}

func synthetic(n int, seed uint64) records {
	r := rand.New(rand.NewPCG(seed, 7))
	t := records{
		age: make([]int32, n), male: make([]bool, n), diabetic: make([]bool, n),
		sbp: make([]float64, n), hba1c: make([]float64, n), bmi: make([]float64, n),
	}
	nan := func() float64 { var z float64; return z / z }
	for i := range n {
		t.age[i] = int32(18 + r.IntN(78))
		t.male[i] = r.IntN(2) == 0
		t.diabetic[i] = r.Float64() < 0.15
		t.sbp[i] = 100 + 40*r.Float64()
		t.bmi[i] = 18 + 20*r.Float64()
		t.hba1c[i] = nan()
		if r.Float64() < 0.7 {
			t.hba1c[i] = 5 + 4*r.Float64()
		}
	}
	return t
}

// benchEdges are the 10 BMI bins of the benchmark's histogram.
var benchEdges = []float64{15, 20, 22.5, 25, 27.5, 30, 32.5, 35, 40, 50, 80}

const benchCellSlots = 14 // count, n, sum, sumsq, 10 bins

// aggregate is the typical query in the clear: WHERE age BETWEEN 40 AND 80
// AND diabetic AND sbp >= 90, GROUP BY sex, COUNT(*), AVG and STDDEV of
// HbA1c (fixed point, one decimal, centred on 11.5 %) and a 10-bin BMI
// histogram.
func (t records) aggregate() []int64 {
	out := make([]int64, 2*benchCellSlots)
	for i, a := range t.age {
		if a < 40 || a > 80 || !t.diabetic[i] || t.sbp[i] < 90 {
			continue
		}
		c := out[:benchCellSlots]
		if t.male[i] {
			c = out[benchCellSlots:]
		}
		c[0]++
		if h := t.hba1c[i]; h == h {
			x := int64(h*10+0.5) - 115
			c[1]++
			c[2] += x
			c[3] += x * x
		}
		b := t.bmi[i]
		for k := 1; k < len(benchEdges); k++ {
			if b < benchEdges[k] || k == len(benchEdges)-1 {
				if b >= benchEdges[0] {
					c[3+k]++
				}
				break
			}
		}
	}
	return out
}

func benchSpec(records int64) Spec {
	var slots []SlotSpec
	for cell := range 2 {
		base := len(slots)
		slots = append(slots,
			SlotSpec{Cell: cell, Group: 0, Gate: base, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
			SlotSpec{Cell: cell, Group: 1, Gate: base + 1, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
			SlotSpec{Cell: cell, Group: 2, Gate: base + 1, Kind: SlotSum, Sensitivity: 85, MaxAbs: 85},
			SlotSpec{Cell: cell, Group: 3, Gate: base + 1, Kind: SlotSum, Sensitivity: 85 * 85, MaxAbs: 85 * 85},
		)
		for k := range 10 {
			slots = append(slots, SlotSpec{Cell: cell, Group: 4, Gate: base + 4 + k, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1})
		}
	}
	return Spec{Slots: slots, Records: records, MinCell: 10, Epsilon: 1, Noise: true}
}

// BenchmarkQuery is the benchmark on synthetic columns: 1M patients
// (100k with -short) across 3 custodians, which with the ethics board hold
// the 4 key shares. Each iteration runs the query in the clear and then
// through the encrypted path (the same scans, the whole protocol, the
// sponsor's decryption), and reports both times, their ratio, the
// cryptographic critical path (in CPU time, and in wall time in this
// process), how far the encrypted time is from issue 4's target of 3× the
// plaintext plus 15 ms (of-target below 1 meets it), and the bytes
// exchanged. The crypto target is 15 ms.
func BenchmarkQuery(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	const contributors = 3
	s := newStudy(b, "custodian-1", "custodian-2", "custodian-3", "board")
	parts := make([]records, contributors)
	for i := range parts {
		parts[i] = synthetic(n/contributors, uint64(i))
	}
	spec := benchSpec(int64(n))
	var plain, enc, crypto, cryptoWall time.Duration
	var msg int64
	for b.Loop() {
		start := time.Now()
		total := make([]int64, len(spec.Slots))
		for _, t := range parts {
			for i, v := range t.aggregate() {
				total[i] += v
			}
		}
		plain += time.Since(start)

		start = time.Now()
		contributions := make([][]int64, contributors)
		for i, t := range parts {
			contributions[i] = t.aggregate()
		}
		rel, err := RunLocalCustodians(b.Context(), s.p, s.pk, s.holders, spec, contributions, s.pub)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Now()
		if _, err := s.sponsor.Decrypt(rel.Ciphertext, len(spec.Slots)); err != nil {
			b.Fatal(err)
		}
		dec := time.Since(d)
		crypto += rel.CryptoCPU + dec
		cryptoWall += rel.CryptoCritical + dec
		enc += time.Since(start)
		msg = rel.MessageBytes
	}
	iters := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / iters }
	b.ReportMetric(ms(plain), "plaintext-ms/op")
	b.ReportMetric(ms(enc), "encrypted-ms/op")
	b.ReportMetric(float64(enc)/float64(plain), "ratio")
	b.ReportMetric(ms(crypto), "crypto-ms/op")
	b.ReportMetric(ms(cryptoWall), "crypto-wall-ms/op")
	b.ReportMetric(float64(enc)/float64(3*plain+15*time.Millisecond*time.Duration(b.N)), "of-target")
	b.ReportMetric(float64(msg), "msgbytes/op")
}
