package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is how long the generated certificates last: long enough
// that a developer's cluster never expires under them, short enough to be a
// recognisably local setup.
const certValidity = 5 * 365 * 24 * time.Hour

// authority is a CA key pair able to sign leaf certificates.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// leaf describes one certificate signed by a CA.
type leaf struct {
	file   string // base name: <file>.crt and <file>.key
	cn     string
	orgs   []string
	dns    []string
	ips    []net.IP
	server bool
	client bool
}

// loadOrCreateCA returns the CA stored as dir/<name>.crt|key, creating it
// when absent. Reusing it keeps kubeconfigs and kubelet credentials valid
// across `cluster down` and `cluster up`.
func loadOrCreateCA(dir, name, cn string) (*authority, error) {
	crtPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if ca, err := loadPair(crtPath, keyPath); err == nil {
		return &authority{cert: ca.cert, key: ca.key}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"scaleplane"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", name, err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writePair(crtPath, keyPath, der, key); err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

// issue writes dir/<l.file>.crt|key signed by ca unless a pair exists that
// this CA signed with the same names (so a changed node IP re-issues).
func (ca *authority) issue(dir string, l leaf) error {
	crtPath, keyPath := filepath.Join(dir, l.file+".crt"), filepath.Join(dir, l.file+".key")
	if old, err := loadPair(crtPath, keyPath); err == nil && old.cert.CheckSignatureFrom(ca.cert) == nil && sameNames(old.cert, l) {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.cn, Organization: l.orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     l.dns,
		IPAddresses:  l.ips,
	}
	if l.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("signing %s: %w", l.file, err)
	}
	return writePair(crtPath, keyPath, der, key)
}

// sameNames reports whether cert already carries exactly the subject and
// alternative names l asks for.
func sameNames(c *x509.Certificate, l leaf) bool {
	if c.Subject.CommonName != l.cn || len(c.Subject.Organization) != len(l.orgs) ||
		len(c.DNSNames) != len(l.dns) || len(c.IPAddresses) != len(l.ips) {
		return false
	}
	for i := range l.orgs {
		if c.Subject.Organization[i] != l.orgs[i] {
			return false
		}
	}
	for i := range l.dns {
		if c.DNSNames[i] != l.dns[i] {
			return false
		}
	}
	for i := range l.ips {
		if !c.IPAddresses[i].Equal(l.ips[i]) {
			return false
		}
	}
	return time.Until(c.NotAfter) > 30*24*time.Hour
}

// loadOrCreateSAKey returns the service-account signing key pair (sa.key,
// sa.pub), creating it once: rotating it would invalidate every token.
func loadOrCreateSAKey(dir string) error {
	keyPath, pubPath := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if _, err := os.Stat(keyPath); err == nil {
		if _, err := os.Stat(pubPath); err == nil {
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

type pair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func loadPair(crtPath, keyPath string) (*pair, error) {
	crtPEM, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(crtPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("%s or %s is not PEM", crtPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", crtPath, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", keyPath, err)
	}
	return &pair{cert: cert, key: key}, nil
}

func writePair(crtPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", keyPath, err)
	}
	if err := os.WriteFile(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", crtPath, err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
