package privacy_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/medx/medx/privacy"
)

// ExampleRunLocal runs one query over two custodians' aggregates: a patient
// count and a sum of HbA1c (in tenths of a percent) per sex, with the ethics
// board holding the third key share. Noise is off so the output is exact; a
// real study sets Noise and Epsilon.
func ExampleRunLocal() {
	p, err := privacy.NewParams(privacy.DefaultParams())
	if err != nil {
		log.Fatal(err)
	}

	// Key ceremony: every key holder publishes a share for a public seed.
	crs := []byte("study-42/ceremony/2025-01-01")
	var holders []*privacy.KeyHolder
	var shares [][]byte
	for _, id := range []string{"hospital-a", "lab-b", "ethics-board"} {
		h, err := privacy.NewKeyHolder(p, id)
		if err != nil {
			log.Fatal(err)
		}
		share, err := h.PublicKeyShare(crs)
		if err != nil {
			log.Fatal(err)
		}
		holders = append(holders, h)
		shares = append(shares, share)
	}
	pk, err := privacy.CollectivePublicKey(p, crs, shares)
	if err != nil {
		log.Fatal(err)
	}

	// The sponsor's own key pair; only its public half leaves the sponsor.
	sponsor, err := privacy.NewSponsorKey(p)
	if err != nil {
		log.Fatal(err)
	}
	sponsorPub, err := sponsor.PublicKey()
	if err != nil {
		log.Fatal(err)
	}

	// Slots: [count F, sum hba1c F, count M, sum hba1c M].
	spec := privacy.Spec{
		Slots: []privacy.SlotSpec{
			{Cell: 0, Group: 0, Gate: 0, Kind: privacy.SlotCount, Sensitivity: 1, MaxAbs: 1},
			{Cell: 0, Group: 1, Gate: 0, Kind: privacy.SlotSum, Sensitivity: 200, MaxAbs: 200},
			{Cell: 1, Group: 0, Gate: 2, Kind: privacy.SlotCount, Sensitivity: 1, MaxAbs: 1},
			{Cell: 1, Group: 1, Gate: 2, Kind: privacy.SlotSum, Sensitivity: 200, MaxAbs: 200},
		},
		Records: 1000,
		MinCell: 10,
	}
	contributions := [][]int64{
		{120, 8400, 6, 410}, // hospital-a
		{80, 5800, 3, 190},  // lab-b
	}

	rel, err := privacy.RunLocal(context.Background(), p, pk, holders, spec, contributions, sponsorPub)
	if err != nil {
		log.Fatal(err)
	}
	result, err := sponsor.Decrypt(rel.Ciphertext, len(spec.Slots))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("result:", result)
	fmt.Println("suppressed:", rel.Disclosure.SuppressedSlots)
	fmt.Println("mechanism:", rel.Disclosure.Mechanism, "key holders:", rel.Disclosure.KeyHolders)
	fmt.Printf("mean hba1c F: %.2f%%\n", float64(result[1])/float64(result[0])/10)
	// Output:
	// result: [200 14200 0 0]
	// suppressed: [2 3]
	// mechanism: none key holders: 3
	// mean hba1c F: 7.10%
}

// Example_twoRounds shows the query protocol role by role, as the exchange
// runs it over the network: every party sends one ciphertext; the exchange
// sums them, has the key holders decrypt only the noisy counts (the gate),
// then has them re-encrypt only the released slots to the sponsor. Here one
// custodian and the ethics board hold the key; noise is on, so only the
// suppression pattern is printed.
func Example_twoRounds() {
	p, err := privacy.NewParams(privacy.DefaultParams())
	if err != nil {
		log.Fatal(err)
	}
	crs := []byte("study-7/ceremony/0001")
	custodian, _ := privacy.NewKeyHolder(p, "hospital-a")
	board, _ := privacy.NewKeyHolder(p, "ethics-board")
	holders := []*privacy.KeyHolder{custodian, board}
	var pkShares [][]byte
	for _, h := range holders {
		s, err := h.PublicKeyShare(crs)
		if err != nil {
			log.Fatal(err)
		}
		pkShares = append(pkShares, s)
	}
	pk, err := privacy.CollectivePublicKey(p, crs, pkShares)
	if err != nil {
		log.Fatal(err)
	}
	sponsor, _ := privacy.NewSponsorKey(p)
	sponsorPub, _ := sponsor.PublicKey()

	// Two cells: a large one and one of 3 patients. With count noise of scale
	// 2, the small cell would need noise of 47 or more to pass MinCell 50.
	spec := privacy.Spec{
		Slots: []privacy.SlotSpec{
			{Cell: 0, Group: 0, Gate: 0, Kind: privacy.SlotCount, Sensitivity: 1, MaxAbs: 1},
			{Cell: 0, Group: 1, Gate: 0, Kind: privacy.SlotSum, Sensitivity: 100, MaxAbs: 100},
			{Cell: 1, Group: 0, Gate: 2, Kind: privacy.SlotCount, Sensitivity: 1, MaxAbs: 1},
			{Cell: 1, Group: 1, Gate: 2, Kind: privacy.SlotSum, Sensitivity: 100, MaxAbs: 100},
		},
		Records: 5000, MinCell: 50, Epsilon: 1, Noise: true,
	}
	vec := []int64{2400, 61000, 3, 150} // the custodian's plaintext aggregate

	// One message per party: the custodian's vector, each key holder's
	// private noise share.
	ct, err := privacy.Encrypt(p, pk, spec, vec) // custodian
	if err != nil {
		log.Fatal(err)
	}
	msgs := [][]byte{ct}
	for _, h := range holders { // key holders
		n, err := h.DrawNoise(spec, len(holders))
		if err != nil {
			log.Fatal(err)
		}
		ct, err := n.Encrypt(p, pk)
		if err != nil {
			log.Fatal(err)
		}
		msgs = append(msgs, ct)
	}
	sum, err := privacy.Add(p, msgs...) // exchange
	if err != nil {
		log.Fatal(err)
	}

	// Gate: only the count-like slots are decrypted.
	gateCT, err := privacy.SelectCounts(p, spec, sum) // exchange
	if err != nil {
		log.Fatal(err)
	}
	var shares [][]byte
	for _, h := range holders {
		s, err := h.DecryptShare(gateCT)
		if err != nil {
			log.Fatal(err)
		}
		shares = append(shares, s)
	}
	noisy, err := privacy.CombineDecrypt(p, gateCT, shares, len(spec.Slots)) // exchange
	if err != nil {
		log.Fatal(err)
	}
	suppressed := privacy.Gate(spec, noisy)

	// Release: only the unsuppressed slots of the layout, to the sponsor.
	releaseCT, err := privacy.SelectRelease(p, spec, suppressed, sum) // exchange
	if err != nil {
		log.Fatal(err)
	}
	shares = shares[:0]
	for _, h := range holders {
		s, err := h.SwitchShare(releaseCT, sponsorPub)
		if err != nil {
			log.Fatal(err)
		}
		shares = append(shares, s)
	}
	forSponsor, err := privacy.CombineSwitch(p, releaseCT, shares)
	if err != nil {
		log.Fatal(err)
	}

	result, err := sponsor.Decrypt(forSponsor, len(spec.Slots)) // sponsor
	if err != nil {
		log.Fatal(err)
	}
	d := privacy.NewDisclosure(spec, suppressed, len(holders))
	fmt.Println("suppressed:", d.SuppressedSlots, "small cell reads:", result[2], result[3])
	fmt.Println("count carries the gate's noise:", result[0] == noisy[0])
	fmt.Println(d.Mechanism, d.NoiseScales, d.EpsilonSpent)
	// Output:
	// suppressed: [2 3] small cell reads: 0 0
	// count carries the gate's noise: true
	// discrete-laplace [2 200 2 200] 1
}

// ExampleSpec_Check shows a query refused before any work because its totals
// could wrap modulo the plaintext modulus T ≈ 2^50.
func ExampleSpec_Check() {
	p, err := privacy.NewParams(privacy.DefaultParams())
	if err != nil {
		log.Fatal(err)
	}
	spec := privacy.Spec{
		Slots: []privacy.SlotSpec{
			{Kind: privacy.SlotCount, Sensitivity: 1, MaxAbs: 1},
			// A sum of squares of values up to 2^16, over 2^18 patients.
			{Gate: 0, Group: 1, Kind: privacy.SlotSum, Sensitivity: 1 << 32, MaxAbs: 1 << 32},
		},
		Records: 1 << 18,
		MinCell: 10,
		Epsilon: 1,
		Noise:   true,
	}
	err = spec.Check(p)
	fmt.Println(errors.Is(err, privacy.ErrInvalidSpec))
	fmt.Println(err)
	// Output:
	// true
	// privacy: invalid spec: slot 1: totals could reach Records·MaxAbs = 262144·4294967296 = 1125899906842624 plus a noise tail of 549755813889, not below T/2 = 562949953495040: they would wrap modulo the plaintext modulus (lower Records or MaxAbs, raise epsilon, or split the statistic)
}

// ExampleCheckDifferencing is the differencing check of a sponsor's second
// query, WHERE age >= 40 AND NOT <a predicate only one patient meets>,
// against the first, WHERE age >= 40. Each custodian compares the two
// cohorts on its own node and reports counts capped at the minimum cell
// size; the referee sums them and refuses.
func ExampleCheckDifferencing() {
	const minCell = 10
	reports := []privacy.CohortReport{
		{ // hospital-a: the patient is one of its own
			Cells: []int64{privacy.Cap(412, minCell)},
			Comparisons: []privacy.SetComparison{{
				Earlier: "qry-1", Cell: 0, EarlierCell: 0, SameShape: true,
				Size: privacy.Cap(412, minCell), EarlierSize: privacy.Cap(413, minCell),
				Differ: 1, Shared: 1, // licensed for both queries
			}},
		},
		{ // lab-b: identical cohorts
			Cells: []int64{privacy.Cap(388, minCell)},
			Comparisons: []privacy.SetComparison{{
				Earlier: "qry-1", Cell: 0, EarlierCell: 0, SameShape: true,
				Size: privacy.Cap(388, minCell), EarlierSize: privacy.Cap(388, minCell),
			}},
		},
	}
	_, err := privacy.CheckDifferencing(minCell, true, reports)
	fmt.Println(errors.Is(err, privacy.ErrDifferencing))

	// The same pair after a revocation, with no predicate difference: a
	// licence change, allowed and recorded.
	reports[0].Comparisons[0].Shared = 0
	d, err := privacy.CheckDifferencing(minCell, true, reports)
	fmt.Println(err, d.Compared, d.LicenceChangeOnly)
	// Output:
	// true
	// <nil> 1 [qry-1]
}
