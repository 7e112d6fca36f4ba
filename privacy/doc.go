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
// totalled over their licensed patients. Then:
//
//  1. Gate round. Every key holder draws a [NoiseShare] ([KeyHolder.DrawNoise]).
//     Contributors call [EncryptCounts], key holders [NoiseShare.EncryptCounts];
//     the exchange sums them with [Add], every key holder returns [KeyHolder.DecryptShare]
//     and the exchange obtains the noisy counts with [CombineDecrypt]. [Gate]
//     decides which slots are suppressed.
//  2. Release round. Contributors call [EncryptPayload], key holders
//     [NoiseShare.EncryptPayload] (the same noise, so epsilon is spent once); the
//     exchange sums them with [Add], every key holder returns [KeyHolder.SwitchShare] for
//     the sponsor's public key, and [CombineSwitch] yields a ciphertext that only
//     the sponsor can open with [SponsorKey.Decrypt].
//
// [RunLocal] plays every role in one process, built only from the functions
// above; it is what tests, benchmarks and the demo use.
//
// # Disclosure control
//
// [Spec.Check] refuses a malformed query, or one whose totals could wrap
// modulo the plaintext modulus T, before any work. Noise is discrete Laplace
// of scale [Spec.NoiseScales] per slot (the query's epsilon split equally
// among the statistic groups of a cell; cells are disjoint), drawn in shares
// by the key holders so that only the sum is calibrated and no single party
// knows it (see [KeyHolder.DrawNoise]). A key holder keeps its [NoiseShare]
// between the two rounds (MarshalBinary / [UnmarshalNoiseShare] if it must
// be stored). [Gate] suppresses small cells on the noisy counts and fails
// closed on values no honest run can produce ([Plausible]). [NewDisclosure]
// is the account that goes to the sponsor and onto the ledger.
//
// # Trust
//
// The exchange (aggregator) sees ciphertexts, shares and the noisy count-like
// slots, nothing else. Every key holder must take part in every decryption, so
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
