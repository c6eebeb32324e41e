package kit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// testPKI is a private CA and a server certificate for 127.0.0.1, written
// as PEM files, standing in for the CA of a managed store.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err, "CA key")
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scaleplane test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err, "CA certificate")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err, "server key")
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	require.NoError(t, err, "server certificate")
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err, "marshal server key")
	p := testPKI{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server-key.pem"),
	}
	for path, block := range map[string]*pem.Block{
		p.caFile: {Type: "CERTIFICATE", Bytes: caDER}, p.certFile: {Type: "CERTIFICATE", Bytes: leafDER}, p.keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(block), 0o644), "write %s", path)
	}
	p.server, err = tls.LoadX509KeyPair(p.certFile, p.keyFile)
	require.NoError(t, err, "load the server pair")
	return p
}

// TestRedisOverTLS starts a real redis-server with a TLS port and the
// test CA's certificate: REDIS_TLS with the CA file talks to it, a client
// without TLS or without the CA does not (the certificate is verified, as
// against ElastiCache's).
func TestRedisOverTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	port := realservertest.MustFreePort(t)
	realservertest.MustStartRedis(t, fmt.Sprintf("tls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\n",
		port, pki.certFile, pki.keyFile, pki.caFile))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ping := func(tc kit.TLSConfig) error {
		c, err := kit.NewRedis(kit.RedisConfig{Addrs: []string{addr}, Timeout: time.Second, TLS: tc})
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	env := kit.MapEnv(map[string]string{"REDIS_ADDRS": addr, "REDIS_CLUSTER": "false", "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": pki.caFile})
	cfg := kit.RedisFromEnv(env)
	require.NoError(t, env.Err(), "the TLS variables parse")
	assert.NoError(t, ping(cfg.TLS), "PING over TLS trusting the store's CA")
	assert.Error(t, ping(kit.TLSConfig{}), "plain text to a TLS port fails")
	assert.Error(t, ping(kit.TLSConfig{Enabled: true}), "the system roots do not trust the test CA: the certificate is checked")
}

// TestKafkaOverTLS produces through franz-go's kfake broker serving TLS
// (MSK's client listener is TLS only) with the options the gateway and
// worker build from KAFKA_TLS.
func TestKafkaOverTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}))
	require.NoError(t, err, "start kfake with TLS")
	defer broker.Close()
	produce := func(tc kit.TLSConfig) error {
		opts, err := kit.KafkaTLSOpts(tc)
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(broker.ListenAddrs()...), kgo.DefaultProduceTopic("t"))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr()
	}
	assert.NoError(t, produce(kit.TLSConfig{Enabled: true, CAFile: pki.caFile}), "acks over TLS trusting the broker's CA")
	assert.Error(t, produce(kit.TLSConfig{Enabled: true}), "the system roots do not trust the test CA: the certificate is checked")
}

// TestBadTLSSettingsAreErrors: a CA file without TLS, a missing or empty
// CA file are configuration mistakes reported at start, not at the first
// request.
func TestBadTLSSettingsAreErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(empty, nil, 0o644), "write an empty CA file")
	for name, tc := range map[string]kit.TLSConfig{
		"CA without TLS":  {CAFile: empty},
		"missing CA file": {Enabled: true, CAFile: filepath.Join(t.TempDir(), "nope.pem")},
		"empty CA file":   {Enabled: true, CAFile: empty},
	} {
		_, err := kit.NewRedis(kit.RedisConfig{Addrs: []string{"127.0.0.1:1"}, TLS: tc})
		assert.Error(t, err, "%s: NewRedis refuses it", name)
		_, err = kit.KafkaTLSOpts(tc)
		assert.Error(t, err, "%s: KafkaTLSOpts refuses it", name)
	}
	_, err := kit.NewRedis(kit.RedisConfig{Addrs: []string{"127.0.0.1:1"}})
	assert.NoError(t, err, "no TLS and no CA is the in-cluster default")
}
