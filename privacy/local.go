package privacy

import (
	"context"
	"fmt"
	"time"
)

// Release is the outcome of one query run by RunLocal.
type Release struct {
	// Ciphertext is the result re-encrypted to the sponsor's key; open it with
	// SponsorKey.Decrypt(Ciphertext, len(spec.Slots)).
	Ciphertext []byte
	// Suppressed marks the slots withheld by the gate (they decrypt to 0).
	Suppressed []bool
	// Disclosure accounts for what was applied (EpsilonLeft left at 0).
	Disclosure Disclosure
	// MessageBytes is the total size of every message exchanged: each
	// contributor's and key holder's ciphertexts, the sums sent back to every
	// key holder, their shares, and the result sent to the sponsor.
	MessageBytes int64
	// CryptoCritical is the cryptographic critical path as if the parties
	// ran in parallel: for every step, the time of its slowest party.
	CryptoCritical time.Duration
}

// RunLocal plays every role of one query in this process: the contributors
// (one vector each in contributions), the key holders (who must be exactly the
// holders of pk), the aggregator and the sponsor's key switch. It is built
// only from the package's exported protocol functions and is meant for tests,
// benchmarks and demos. It checks everything before doing any work, and ctx
// between steps.
func RunLocal(ctx context.Context, p Params, pk *PublicKey, holders []*KeyHolder, spec Spec, contributions [][]int64, sponsorPub []byte) (*Release, error) {
	if err := checkKey(p, pk); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	if err := spec.Check(p); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	if err := checkHolders(p, pk, holders); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	if len(contributions) == 0 {
		return nil, fmt.Errorf("run query: %w: no contributions", ErrInvalidSpec)
	}
	for i, vec := range contributions {
		if err := checkVector(spec, vec); err != nil {
			return nil, fmt.Errorf("run query: contribution %d: %w", i, err)
		}
	}
	if _, _, err := parseSponsorPublic(p, sponsorPub); err != nil {
		return nil, fmt.Errorf("run query: sponsor key: %w", err)
	}

	rel := &Release{}
	var step time.Duration // slowest party of the current step
	timed := func(f func() error) error {
		start := time.Now()
		err := f()
		step = max(step, time.Since(start))
		return err
	}
	endStep := func() error {
		rel.CryptoCritical += step
		step = 0
		return ctx.Err()
	}
	send := func(b []byte, copies int) { rel.MessageBytes += int64(len(b)) * int64(copies) }
	k := len(holders)

	// Every key holder draws its private noise share for this query.
	noise := make([]*NoiseShare, k)
	for i, h := range holders {
		if err := timed(func() (err error) { noise[i], err = h.DrawNoise(spec, k); return err }); err != nil {
			return nil, fmt.Errorf("run query: %w", err)
		}
	}
	if err := endStep(); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}

	// Gate round: count-only ciphertexts, summed and collectively decrypted.
	var msgs [][]byte
	for i, vec := range contributions {
		if err := timed(func() error {
			b, err := EncryptCounts(p, pk, spec, vec)
			msgs = append(msgs, b)
			return err
		}); err != nil {
			return nil, fmt.Errorf("run query: contributor %d: %w", i, err)
		}
	}
	for _, n := range noise {
		if err := timed(func() error {
			b, err := n.EncryptCounts(p, pk)
			msgs = append(msgs, b)
			return err
		}); err != nil {
			return nil, fmt.Errorf("run query: %w", err)
		}
	}
	gateCT, err := addStep(p, msgs, send, timed, endStep)
	if err != nil {
		return nil, fmt.Errorf("run query: gate: %w", err)
	}
	send(gateCT, k)
	shares := make([][]byte, k)
	for i, h := range holders {
		if err := timed(func() (err error) { shares[i], err = h.DecryptShare(gateCT); return err }); err != nil {
			return nil, fmt.Errorf("run query: %w", err)
		}
		send(shares[i], 1)
	}
	if err := endStep(); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	var counts []int64
	if err := timed(func() (err error) { counts, err = CombineDecrypt(p, gateCT, shares, len(spec.Slots)); return err }); err != nil {
		return nil, fmt.Errorf("run query: gate: %w", err)
	}
	if err := endStep(); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	if !Plausible(spec, counts) {
		return nil, fmt.Errorf("run query: gate: %w: the noisy counts are implausible (a key holder's share is missing or the key does not match)", ErrWrongKey)
	}
	rel.Suppressed = Gate(spec, counts)

	// Release round: full payloads with the same noise, switched to the sponsor.
	msgs = msgs[:0]
	for i, vec := range contributions {
		if err := timed(func() error {
			b, err := EncryptPayload(p, pk, spec, vec, rel.Suppressed)
			msgs = append(msgs, b)
			return err
		}); err != nil {
			return nil, fmt.Errorf("run query: contributor %d: %w", i, err)
		}
	}
	for _, n := range noise {
		if err := timed(func() error {
			b, err := n.EncryptPayload(p, pk, rel.Suppressed)
			msgs = append(msgs, b)
			return err
		}); err != nil {
			return nil, fmt.Errorf("run query: %w", err)
		}
	}
	payload, err := addStep(p, msgs, send, timed, endStep)
	if err != nil {
		return nil, fmt.Errorf("run query: release: %w", err)
	}
	send(payload, k)
	for i, h := range holders {
		if err := timed(func() (err error) { shares[i], err = h.SwitchShare(payload, sponsorPub); return err }); err != nil {
			return nil, fmt.Errorf("run query: %w", err)
		}
		send(shares[i], 1)
	}
	if err := endStep(); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	if err := timed(func() (err error) { rel.Ciphertext, err = CombineSwitch(p, payload, shares); return err }); err != nil {
		return nil, fmt.Errorf("run query: release: %w", err)
	}
	if err := endStep(); err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	send(rel.Ciphertext, 1)
	rel.Disclosure = NewDisclosure(spec, rel.Suppressed, k)
	return rel, nil
}

// addStep ends the encryption step (counting every message sent to the
// aggregator) and sums the messages.
func addStep(p Params, msgs [][]byte, send func([]byte, int), timed func(func() error) error, endStep func() error) ([]byte, error) {
	for _, m := range msgs {
		send(m, 1)
	}
	if err := endStep(); err != nil {
		return nil, err
	}
	var sum []byte
	if err := timed(func() (err error) { sum, err = Add(p, msgs...); return err }); err != nil {
		return nil, err
	}
	if err := endStep(); err != nil {
		return nil, err
	}
	return sum, nil
}

// checkHolders requires exactly the key holders of pk, under p.
func checkHolders(p Params, pk *PublicKey, holders []*KeyHolder) error {
	if len(holders) != pk.KeyHolders() {
		return fmt.Errorf("%w: %d key holders given, the public key has %d", ErrWrongKey, len(holders), pk.KeyHolders())
	}
	want := map[string]bool{}
	for _, id := range pk.holders {
		want[id] = true
	}
	for i, h := range holders {
		if h == nil {
			return fmt.Errorf("%w: key holder %d is nil", ErrMalformed, i)
		}
		if !p.Equal(h.p) {
			return fmt.Errorf("%w: key holder %s has other parameters", ErrInvalidParams, h.id)
		}
		if !want[h.id] {
			return fmt.Errorf("%w: key holder %s is not one of the public key's (or appears twice)", ErrWrongKey, h.id)
		}
		delete(want, h.id)
	}
	return nil
}
