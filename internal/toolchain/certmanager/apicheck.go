//go:build scaleplane_certmanager

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
)

// apicheckOptions are the apicheck's command line.
type apicheckOptions struct {
	namespace, kubeconfig string
	timeout, interval     time.Duration
}

func apicheckFlags(fs *pflag.FlagSet) func(context.Context) error {
	o := &apicheckOptions{}
	fs.StringVar(&o.namespace, "namespace", "", "namespace the test Issuer is dry-run created in (required)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up (exit 1) after this long")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "wait between attempts")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty uses the pod's ServiceAccount (in-cluster config)")
	return o.run
}

// run dry-runs the creation of a self-signed Issuer until the API server
// accepts it. Acceptance proves what the rest of a stack needs before it
// creates cert-manager resources: the CRDs are established, and the API
// server reached the webhook over TLS with the CA the cainjector injected
// (a dry run still calls admission webhooks). Each failure is printed with
// the time so far, so a Job's log tells which of these is still missing.
func (o *apicheckOptions) run(ctx context.Context) error {
	if o.namespace == "" {
		return badFlag("namespace", "", "a namespace is required: the test Issuer is namespaced")
	}
	if o.timeout <= 0 {
		return badFlag("timeout", o.timeout.String(), "a positive duration such as 5m")
	}
	if o.interval <= 0 {
		return badFlag("interval", o.interval.String(), "a positive duration such as 2s")
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading the API server's client configuration: %w", err)
	}
	// One attempt must not outlive the interval by much: a hung webhook
	// call is a failed attempt, not the end of the check.
	restConfig.Timeout = 10 * time.Second
	cs, err := cmclient.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("creating the cert-manager client: %w", err)
	}
	issuer := &cmapi.Issuer{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "scaleplane-apicheck-", Namespace: o.namespace},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
	}
	start := time.Now()
	deadline, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		_, err := cs.CertmanagerV1().Issuers(o.namespace).Create(deadline, issuer, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		elapsed := time.Since(start).Round(100 * time.Millisecond)
		if err == nil {
			fmt.Fprintf(os.Stderr, "apicheck: the cert-manager API is ready: attempt %d accepted a dry-run Issuer in %s after %s\n", attempt, o.namespace, elapsed)
			return nil
		}
		fmt.Fprintf(os.Stderr, "apicheck: attempt %d after %s: %v\n", attempt, elapsed, err)
		select {
		case <-deadline.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("stopped after %d attempts in %s: %w", attempt, elapsed, ctx.Err())
			}
			return fmt.Errorf("the cert-manager API did not accept a dry-run Issuer in namespace %s within --timeout=%s (%d attempts); last error: %w", o.namespace, o.timeout, attempt, err)
		case <-time.After(o.interval):
		}
	}
}
