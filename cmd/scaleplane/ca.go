package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/pulumicli"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// caWait bounds the wait for cert-manager to issue the stack's CA: on a
// warm node it is there within seconds of the Certificate.
const caWait = 90 * time.Second

// caFile is where the stack's self-signed edge CA is written: beside the
// other cached state of this machine, one file per stack.
func caFile(root, stack string) string {
	return filepath.Join(root, stack+"-ca.crt")
}

// decodeCA turns the base64 ca.crt of the CA Secret (as kubectl's
// jsonpath prints it) into PEM, refusing anything that is not one CA
// certificate, so what is written is something curl can trust.
func decodeCA(b64 string) ([]byte, *x509.Certificate, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, nil, fmt.Errorf("ca.crt is not base64: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New("ca.crt holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("ca.crt: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("ca.crt (%s) is not a CA certificate", cert.Subject)
	}
	return pem.EncodeToMemory(block), cert, nil
}

// printCA writes the stack's edge CA (the self-signed chain's, when the
// stack uses it: output tlsCaSecret) to caFile and says how to use it.
// A stack with a named issuer or on AWS has no CA of ours: nothing to do.
func printCA(ctx context.Context, w io.Writer, kubectl, kc, stack string, res pulumicli.Result) error {
	secret, _ := res.Outputs["tlsCaSecret"].(string)
	ns, _ := res.Outputs["tlsNamespace"].(string)
	if secret == "" || ns == "" {
		return nil
	}
	var domain string
	if names, ok := res.Outputs["tlsDnsNames"].([]any); ok && len(names) > 0 {
		domain, _ = names[0].(string)
	}
	var b64 string
	deadline := time.Now().Add(caWait)
	for {
		out, err := runOut(ctx, kubectl, "--kubeconfig", kc, "-n", ns, "get", "secret", secret, "-o", `jsonpath={.data.ca\.crt}`)
		if err == nil && out != "" {
			b64 = out
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the edge CA Secret %s/%s has no ca.crt after %s (kubectl -n %s describe certificate %s; kubectl -n %s get pods): %v",
				ns, secret, caWait, ns, secret, ns, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	pemData, cert, err := decodeCA(b64)
	if err != nil {
		return fmt.Errorf("the edge CA Secret %s/%s: %w", ns, secret, err)
	}
	root, err := toolchain.Root()
	if err != nil {
		return err
	}
	path := caFile(root, stack)
	if err := os.WriteFile(path, pemData, 0o644); err != nil {
		return fmt.Errorf("write the edge CA: %w", err)
	}
	fmt.Fprintf(w, "\nedge TLS: certificate for %s from cert-manager, signed by the stack's own CA %q (valid until %s)\n",
		domain, cert.Subject.CommonName, cert.NotAfter.Format("2006-01-02"))
	fmt.Fprintf(w, "  CA written to %s: trust it for this stack only, e.g.\n", path)
	// From this machine the edge Service's cluster IP is routed (kube-proxy).
	edgeAddr := "<edge address>"
	if app, _ := res.Outputs["namespace"].(string); app != "" {
		svc := fmt.Sprint(res.Outputs["edgeService"])
		if ip, err := runOut(ctx, kubectl, "--kubeconfig", kc, "-n", app, "get", "service", svc, "-o", "jsonpath={.spec.clusterIP}"); err == nil && ip != "" {
			edgeAddr = ip
		}
	}
	fmt.Fprintf(w, "  curl --cacert %s --resolve %s:443:%s https://%s/v1/users/00000000-0000-4000-8000-000000000000\n", path, domain, edgeAddr, domain)
	fmt.Fprintf(w, "  (the edge serves the public API under /v1/ only, over HTTPS; http:// redirects)\n")
	return nil
}
