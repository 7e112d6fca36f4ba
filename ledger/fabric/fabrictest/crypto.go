package fabrictest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"
)

// CA is an in-memory certificate authority: an organisation's MSP root or
// its TLS root.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// Identity is an X.509 identity of an MSP: a certificate and its private key.
type Identity struct {
	MSPID   string
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte // PKCS#8, as in an MSP keystore
	Key     *ecdsa.PrivateKey
}

// NewCA creates a self-signed ECDSA P-256 root.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{name}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// Issue issues an identity of mspID with common name cn (and DNS names for
// a TLS server).
func (ca *CA) Issue(mspID, cn, ou string, dns ...string) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: []string{ou}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Identity{
		MSPID:   mspID,
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		Key:     key,
	}, nil
}

// NewForeignIdentity returns an identity claiming mspID but issued by a CA
// of its own, which no peer of the network trusts.
func NewForeignIdentity(mspID string) (*Identity, error) {
	ca, err := NewCA("rogue-ca")
	if err != nil {
		return nil, err
	}
	return ca.Issue(mspID, "intruder", "client")
}

// Serialized is the identity as Fabric carries it (msp.SerializedIdentity).
func (id *Identity) Serialized() []byte {
	b, _ := proto.Marshal(&msp.SerializedIdentity{Mspid: id.MSPID, IdBytes: id.CertPEM})
	return b
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

type ecdsaSig struct{ R, S *big.Int }

// sign signs SHA-256(msg) with low S, as Fabric's BCCSP does.
func sign(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		return nil, err
	}
	n := key.Curve.Params().N
	if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		s = new(big.Int).Sub(n, s)
	}
	return asn1.Marshal(ecdsaSig{r, s})
}

// verify checks an ECDSA signature over SHA-256(msg), refusing high S as
// Fabric's BCCSP does.
func verify(pub *ecdsa.PublicKey, msg, sig []byte) error {
	var es ecdsaSig
	rest, err := asn1.Unmarshal(sig, &es)
	if err != nil || len(rest) != 0 || es.R == nil || es.S == nil || es.R.Sign() <= 0 || es.S.Sign() <= 0 {
		return errors.New("failed unmarshalling signature")
	}
	half := new(big.Int).Rsh(pub.Curve.Params().N, 1)
	if es.S.Cmp(half) > 0 {
		return fmt.Errorf("invalid S. Must be smaller than half the order [%s][%s]", es.S, half)
	}
	d := sha256.Sum256(msg)
	if !ecdsa.Verify(pub, d[:], es.R, es.S) {
		return errors.New("the signature is invalid")
	}
	return nil
}

// mspRoots is one organisation's membership service: its root CA.
type mspRoots struct {
	id    string
	roots *x509.CertPool
}

// msps are the channel's organisations, with a cache of the identities
// they validated (as a peer's MSP keeps one).
type msps struct {
	orgs  map[string]*mspRoots
	mu    sync.Mutex
	known map[string]*ecdsa.PublicKey
}

// deserialize checks a serialized identity against the channel's MSPs and
// returns its certificate's key.
func (m *msps) deserialize(serialized []byte) (*ecdsa.PublicKey, string, error) {
	m.mu.Lock()
	pub, ok := m.known[string(serialized)]
	m.mu.Unlock()
	if ok {
		var sid msp.SerializedIdentity
		_ = proto.Unmarshal(serialized, &sid)
		return pub, sid.Mspid, nil
	}
	pub, id, err := deserialize(m.orgs, serialized)
	if err == nil {
		m.mu.Lock()
		m.known[string(serialized)] = pub
		m.mu.Unlock()
	}
	return pub, id, err
}

func deserialize(msps map[string]*mspRoots, serialized []byte) (*ecdsa.PublicKey, string, error) {
	var sid msp.SerializedIdentity
	if err := proto.Unmarshal(serialized, &sid); err != nil {
		return nil, "", fmt.Errorf("could not deserialize a SerializedIdentity: %w", err)
	}
	m, ok := msps[sid.Mspid]
	if !ok {
		return nil, sid.Mspid, fmt.Errorf("MSP %s is unknown", sid.Mspid)
	}
	blk, _ := pem.Decode(sid.IdBytes)
	if blk == nil {
		return nil, sid.Mspid, errors.New("could not decode pem bytes")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, sid.Mspid, fmt.Errorf("could not parse certificate: %w", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: m.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, sid.Mspid, fmt.Errorf("the supplied identity is not valid: %w", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, sid.Mspid, errors.New("certificate key is not ECDSA")
	}
	return pub, sid.Mspid, nil
}
