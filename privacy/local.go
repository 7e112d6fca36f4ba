package privacy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
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
	// contributor's and key holder's ciphertext, the selected ciphertexts sent
	// to every key holder, their shares, and the result sent to the sponsor.
	MessageBytes int64
	// CryptoCritical is the cryptographic critical path as if every party
	// ran on its own node: for every step, the wall time of its slowest
	// party (the aggregator's steps included), measured in this process.
	// On a machine shared with other work it includes the time the parties
	// waited for a core.
	CryptoCritical time.Duration
	// CryptoCPU is the same path counted in CPU time: for every step, the
	// CPU time its slowest party consumed, which is what that party takes
	// on a core of its own. It equals CryptoCritical on platforms that cannot
	// measure a thread's CPU time.
	CryptoCPU time.Duration
	// Steps are the steps that add up to CryptoCritical and CryptoCPU, in
	// order.
	Steps []Step
}

// Step is one step of the protocol and the time of its slowest party.
type Step struct {
	Name    string
	Slowest time.Duration // wall time
	CPU     time.Duration // CPU time
}

// RunLocal plays every role of one query in this process: the contributors
// (one vector each in contributions), the key holders (who must be exactly the
// holders of pk), the aggregator and the sponsor's key switch. It is built
// only from the package's exported protocol functions and is meant for tests,
// benchmarks and demos. It checks everything before doing any work, and ctx
// between steps.
//
// The parties of one step (every contributor's and key holder's encryption,
// then every key holder's decryption share, then every switch share) run
// concurrently on up to GOMAXPROCS goroutines, as they would on their own
// nodes; CryptoCritical adds, step by step, the time of the slowest party.
//
// The steps:
//
//  1. every key holder draws its noise share and encrypts it, every
//     contributor encrypts its vector (Encrypt, NoiseShare.Encrypt);
//  2. the aggregator sums them (Add) and selects the count-like slots
//     (SelectCounts);
//  3. every key holder returns a decryption share (DecryptShare);
//  4. the aggregator recovers the noisy counts (CombineDecrypt), applies the
//     small-cell rule (Gate) and selects the released slots (SelectRelease);
//  5. every key holder returns a switch share for the sponsor's key
//     (SwitchShare);
//  6. the aggregator combines them (CombineSwitch): only the sponsor can
//     open the result.
func RunLocal(ctx context.Context, p Params, pk *PublicKey, holders []*KeyHolder, spec Spec, contributions [][]int64, sponsorPub []byte) (*Release, error) {
	return runLocal(ctx, p, pk, holders, spec, contributions, sponsorPub, false)
}

// RunLocalCustodians is RunLocal for MedX's own arrangement, where every
// contributor is a custodian that also holds a key share: contributor i is
// holders[i], and sends a single message, its vector plus its noise share
// (NoiseShare.EncryptWith); the other key holders (the ethics boards) send
// their noise shares alone. The result is the same; there are fewer
// messages and encryptions.
func RunLocalCustodians(ctx context.Context, p Params, pk *PublicKey, holders []*KeyHolder, spec Spec, contributions [][]int64, sponsorPub []byte) (*Release, error) {
	if len(contributions) > len(holders) {
		return nil, fmt.Errorf("run query: %w: %d contributors but %d key holders: every contributor must hold a key share", ErrInvalidSpec, len(contributions), len(holders))
	}
	return runLocal(ctx, p, pk, holders, spec, contributions, sponsorPub, true)
}

func runLocal(ctx context.Context, p Params, pk *PublicKey, holders []*KeyHolder, spec Spec, contributions [][]int64, sponsorPub []byte, fold bool) (*Release, error) {
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
	send := func(b []byte, copies int) { rel.MessageBytes += int64(len(b)) * int64(copies) }
	// step runs one step's parties concurrently and adds the slowest to the
	// critical path; aggregator steps are steps of one party.
	step := func(what string, tasks ...func() error) error {
		d, cpu, err := parallel(tasks)
		rel.CryptoCritical += d
		rel.CryptoCPU += cpu
		rel.Steps = append(rel.Steps, Step{Name: what, Slowest: d, CPU: cpu})
		if err != nil {
			return fmt.Errorf("run query: %s: %w", what, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("run query: %w", err)
		}
		return nil
	}
	c, k := len(contributions), len(holders)

	// 1. One message per party: contributions and encrypted noise shares
	// (folded into the contribution of a contributor that holds a share).
	msgs := make([][]byte, 0, c+k)
	var mu sync.Mutex
	var tasks []func() error
	for i, vec := range contributions {
		if fold {
			continue
		}
		tasks = append(tasks, func() error {
			b, err := Encrypt(p, pk, spec, vec)
			if err != nil {
				return fmt.Errorf("contributor %d: %w", i, err)
			}
			mu.Lock()
			msgs = append(msgs, b)
			mu.Unlock()
			return nil
		})
	}
	for i, h := range holders {
		tasks = append(tasks, func() error {
			n, err := h.DrawNoise(spec, k)
			if err != nil {
				return err
			}
			var b []byte
			if fold && i < c {
				b, err = n.EncryptWith(p, pk, spec, contributions[i])
			} else {
				b, err = n.Encrypt(p, pk)
			}
			if err != nil {
				return err
			}
			mu.Lock()
			msgs = append(msgs, b)
			mu.Unlock()
			return nil
		})
	}
	if err := step("encrypt: contributors and key holders", tasks...); err != nil {
		return nil, err
	}
	for _, m := range msgs {
		send(m, 1)
	}

	// 2. The aggregator sums them and selects the counts for the gate.
	var sum, gateCT []byte
	if err := step("sum and select counts: exchange", func() (err error) {
		if sum, err = Add(p, msgs...); err != nil {
			return err
		}
		gateCT, err = SelectCounts(p, spec, sum)
		return err
	}); err != nil {
		return nil, err
	}
	send(gateCT, k)

	// 3. Key holders' decryption shares of the counts.
	shares := make([][]byte, k)
	tasks = tasks[:0]
	for i, h := range holders {
		tasks = append(tasks, func() (err error) { shares[i], err = h.DecryptShare(gateCT); return err })
	}
	if err := step("decryption shares: key holders", tasks...); err != nil {
		return nil, err
	}
	for _, sh := range shares {
		send(sh, 1)
	}

	// 4. Noisy counts, small-cell rule, selection of the released slots.
	var releaseCT []byte
	if err := step("gate and select release: exchange", func() error {
		counts, err := CombineDecrypt(p, gateCT, shares, len(spec.Slots))
		if err != nil {
			return err
		}
		if !Plausible(spec, counts) {
			return fmt.Errorf("%w: the noisy counts are implausible (a key holder's share is missing or the key does not match)", ErrWrongKey)
		}
		rel.Suppressed = Gate(spec, counts)
		releaseCT, err = SelectRelease(p, spec, rel.Suppressed, sum)
		return err
	}); err != nil {
		return nil, err
	}
	send(releaseCT, k)

	// 5. Key holders' switch shares to the sponsor's key.
	tasks = tasks[:0]
	for i, h := range holders {
		tasks = append(tasks, func() (err error) { shares[i], err = h.SwitchShare(releaseCT, sponsorPub); return err })
	}
	if err := step("switch shares: key holders", tasks...); err != nil {
		return nil, err
	}
	for _, sh := range shares {
		send(sh, 1)
	}

	// 6. The result, for the sponsor only.
	if err := step("combine switch: exchange", func() (err error) { rel.Ciphertext, err = CombineSwitch(p, releaseCT, shares); return err }); err != nil {
		return nil, err
	}
	send(rel.Ciphertext, 1)
	rel.Disclosure = NewDisclosure(spec, rel.Suppressed, k)
	return rel, nil
}

// parallel runs tasks on up to GOMAXPROCS goroutines and returns the longest
// single task's wall time and CPU time and the tasks' errors, joined. Each
// task runs locked to its OS thread, so that the thread's CPU clock counts
// that task alone.
func parallel(tasks []func() error) (time.Duration, time.Duration, error) {
	errs := make([]error, len(tasks))
	took := make([]time.Duration, len(tasks))
	cpu := make([]time.Duration, len(tasks))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, f := range tasks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			c0, ok := threadCPU()
			start := time.Now()
			errs[i] = f()
			took[i] = time.Since(start)
			cpu[i] = took[i]
			if c1, ok1 := threadCPU(); ok && ok1 {
				cpu[i] = c1 - c0
			}
		}()
	}
	wg.Wait()
	var slowest, slowestCPU time.Duration
	for i := range took {
		slowest = max(slowest, took[i])
		slowestCPU = max(slowestCPU, cpu[i])
	}
	return slowest, slowestCPU, errors.Join(errs...)
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

// ThreadCPU is the CPU time the calling OS thread has consumed, and whether
// the platform can tell; benchmarks use it to time one party's steps on a
// machine where every party shares the cores.
func ThreadCPU() (time.Duration, bool) { return threadCPU() }
