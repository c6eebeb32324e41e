package kit

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TLSConfig says whether a client speaks TLS to a store and which CA it
// trusts. ElastiCache with transit encryption and MSK's TLS listener need
// it; in-cluster stores are reached in plain text inside the namespace's
// NetworkPolicies.
type TLSConfig struct {
	Enabled bool
	// CAFile is a PEM bundle trusted instead of the system roots (a private
	// CA); empty trusts the system roots, which include Amazon's.
	CAFile string
}

// TLSFromEnv reads <prefix>_TLS and <prefix>_TLS_CA_FILE
// (REDIS_TLS, KAFKA_TLS_CA_FILE...).
func TLSFromEnv(e *Env, prefix string) TLSConfig {
	return TLSConfig{
		Enabled: e.Bool(prefix+"_TLS", false),
		CAFile:  e.String(prefix+"_TLS_CA_FILE", ""),
	}
}

// Client returns the crypto/tls client config, or nil when TLS is off.
// TLS 1.2 is the floor both AWS services accept; the server name is left
// to the client library, which sets it per node.
func (c TLSConfig) Client() (*tls.Config, error) {
	if !c.Enabled {
		if c.CAFile != "" {
			return nil, fmt.Errorf("a CA file (%s) is set but TLS is off", c.CAFile)
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// KafkaTLSOpts are the franz-go options for c: none when TLS is off.
func KafkaTLSOpts(c TLSConfig) ([]kgo.Opt, error) {
	cfg, err := c.Client()
	if err != nil || cfg == nil {
		return nil, err
	}
	return []kgo.Opt{kgo.DialTLSConfig(cfg)}, nil
}
