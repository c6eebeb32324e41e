package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// certPEM makes a self-signed certificate, a CA or not.
func certPEM(t *testing.T, isCA bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err, "generate a key")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scaleplane scaleplane edge CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err, "create a certificate")
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestDecodeCAAcceptsOnlyACACertificate(t *testing.T) {
	ca := certPEM(t, true)
	got, cert, err := decodeCA(base64.StdEncoding.EncodeToString(ca) + "\n")
	require.NoError(t, err, "a CA certificate as kubectl prints it")
	assert.Equal(t, ca, got, "written back as the same PEM")
	assert.Equal(t, "scaleplane scaleplane edge CA", cert.Subject.CommonName, "the parsed CA is returned")

	_, _, err = decodeCA(base64.StdEncoding.EncodeToString(certPEM(t, false)))
	assert.ErrorContains(t, err, "is not a CA certificate", "a leaf is not written as the CA")
	_, _, err = decodeCA("not base64!")
	assert.ErrorContains(t, err, "not base64", "garbage is refused")
	_, _, err = decodeCA(base64.StdEncoding.EncodeToString([]byte("hello")))
	assert.ErrorContains(t, err, "no PEM certificate", "a non-PEM value is refused")
	assert.Equal(t, "/c/local-ca.crt", caFile("/c", "local"), "one CA file per stack in the cache")
}
