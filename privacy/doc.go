// Package privacy provides MedX's encrypted federated aggregates and their
// disclosure control: multiparty BGV (lattigo v5) with a collective public key
// held by every data custodian and the ethics board, encrypted per-custodian
// aggregate vectors added by the exchange, a small-cell gate on noisy counts,
// calibrated discrete Laplace noise contributed in shares by the key holders,
// and a collective public-key switch that re-encrypts the released vector to
// the sponsor's own BGV key.
//
// It is the only MedX package that imports lattigo. Its API speaks []int64,
// opaque []byte messages and plain structs; no lattigo type is exported.
//
// # Roles and one query
//
// Key holders (custodians and the ethics board) each own a [KeyHolder]. In a
// ceremony they publish [KeyHolder.PublicKeyShare] for a shared public seed and
// anyone combines the shares with [CollectivePublicKey]. The sponsor owns a
// [SponsorKey] and publishes its public key.
//
// A query is described by a [Spec]: one [SlotSpec] per slot of the aggregate
// vector. Contributors (custodians) hold one plaintext vector each, already
// totalled over their licensed patients. Every party sends one message:
//
//  1. Contributors call [Encrypt]; every key holder draws a [NoiseShare]
//     ([KeyHolder.DrawNoise]) and calls [NoiseShare.Encrypt], or, if it is
//     a contributor too, [NoiseShare.EncryptWith] instead of both. The
//     exchange sums the messages with [Add].
//  2. Gate. The exchange keeps only the count-like slots of the sum
//     ([SelectCounts]); every key holder returns [KeyHolder.DecryptShare]
//     and the exchange obtains the noisy counts with [CombineDecrypt]. [Gate]
//     decides which slots are suppressed.
//  3. Release. The exchange keeps only the unsuppressed slots of the layout
//     ([SelectRelease]); every key holder returns [KeyHolder.SwitchShare] for
//     the sponsor's public key, and [CombineSwitch] yields a ciphertext that
//     only the sponsor can open with [SponsorKey.Decrypt].
//
// The selections multiply the sum by a 0/1 plaintext and drop one modulus,
// so the key holders only ever decrypt counts (never a sum) and only ever
// re-encrypt the layout's released slots to the sponsor: whatever a faulty
// contributor put elsewhere, a per-patient or unfolded vector included,
// never reaches anyone. Key holders refuse to decrypt or switch anything
// else ([ErrMalformed]). The gate and the release come from the same sum, so
// released counts carry the gate's noise and epsilon is spent once.
//
// [RunLocal] and [RunLocalCustodians] play every role in one process, built
// only from the functions above; tests and benchmarks use them.
//
// # Disclosure control
//
// [Spec.Check] refuses a malformed query, or one whose totals could wrap
// modulo the plaintext modulus T, before any work. Noise is discrete Laplace
// of scale [Spec.NoiseScales] per slot (the query's epsilon split equally
// among the statistic groups of a cell; cells are disjoint), drawn in shares
// by the key holders so that only the sum is calibrated and no single party
// knows it (see [KeyHolder.DrawNoise]). [Gate] suppresses small cells on the
// noisy counts and fails closed on values no honest run can produce
// ([Plausible]). [NewDisclosure] is the account that goes to the sponsor and
// onto the ledger.
//
// # Differencing
//
// Two releases over cohorts that differ by one patient reveal that patient:
// COUNT(*) WHERE age >= 40 minus COUNT(*) WHERE age >= 40 AND NOT <a
// predicate that only one patient meets>, and likewise every sum. DataSHIELD
// refuses a subset that differs from its parent by fewer than the minimum
// cell size; MedX applies the same rule between every pair of queries of a
// study, set by set.
//
// The cohort of a query is, per GROUP BY cell, the set of patients licensed
// for it (licence in force, scope covering the query) who pass its WHERE. A
// query releases its cells of at least MinCell patients (smaller ones are
// withheld whole, see below) and, by addition, their union. Each custodian
// keeps, privately, the cohort of every query it took part in and compares
// the new query's with each earlier released one's: for every pair of
// released sets (a cell, or the union of the released cells) it counts the
// patients in exactly one of the two (Differ) and, of those, the patients
// whose licences were in force for both queries (Shared). Only these counts
// leave the custodian, each capped at the minimum cell size (Cap): the sum
// of capped counts is below the minimum exactly when the true sum is, so the
// rule is decided exactly while counts at or above the minimum are never
// revealed. The counts go to the ethics board's node, a key holder, which
// runs [CheckDifferencing] and returns only the verdict: the exchange, the
// sponsor and the ledger see the verdict and its account ([Differencing]), not
// the counts.
//
// The rule, for every pair of sets both holding at least MinCell patients:
//
//   - 0 < Shared < MinCell between corresponding sets of two queries grouped
//     the same way (the same cell, or both unions; SameShape): refused, noise
//     or not. This is the differencing attack proper: the same question
//     asked twice with a handful of patients, licensed both times, added or
//     taken away by the WHERE.
//   - 0 < Shared < MinCell between other sets (a cell of one query against
//     the union or another cell of a differently grouped one, which is how a
//     withheld cell is recovered by complement): refused when noise is off;
//     allowed when noise is on, and listed in Differencing.Noised. Each of
//     the two releases is epsilon-differentially private, which bounds what
//     their difference reveals about any one patient.
//   - Shared = 0 and 0 < Differ < MinCell: allowed, and listed in
//     Differencing.LicenceChangeOnly. The cohorts differ only because
//     licences started, ended or were revoked between the queries, which no
//     sponsor controls; the noise protects the patients involved. With noise
//     off (tests only) such a pair is exact, and the Disclosure says so.
//
// And for the new query alone: a cell with fewer than MinCell patients is
// withheld entirely (Differencing.SmallCells), decided on the exact count as
// DataSHIELD does, so a single-patient cell is never released, noise or not.
// Statistics inside a cell are gated as before on their noisy counts (Gate).
//
// What the rule does not cover: differences between measured subsets inside
// equal cohorts (patients with and without an HbA1c value, histogram bins)
// and between unions of some but not all cells; there the noise is the
// protection, which is why a real study runs with noise on.
//
// # Trust
//
// The exchange (aggregator) sees ciphertexts, shares and the noisy count-like
// slots, nothing else; the differencing referee sees counts capped at the
// minimum cell size. Every key holder must take part in every decryption, so
// the ethics board's refusal halts a study. Key holders are trusted to follow
// the protocol (semi-honest): a key holder asked for a decryption share cannot
// check what the ciphertext contains, and the caller must make sure that the
// sponsor public key passed to [KeyHolder.SwitchShare] really is the sponsor's
// (for instance as registered on the ledger). Message kinds (gate, release,
// sponsor ciphertexts, shares) are tagged to catch honest mistakes; the tags
// are not a security boundary.
//
// # Wire format
//
// Every message starts with "MDX", a kind byte, a version byte and the first 8
// bytes of a SHA-256 fingerprint of the parameters, so a message made under
// other parameters, or of another kind, is refused with [ErrMalformed] before
// any cryptography runs. Polynomials follow as little-endian uint64
// coefficients, each checked to be below its modulus.
package privacy
