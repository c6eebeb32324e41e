//go:build scaleplane_certmanager

package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/cert-manager/cert-manager/internal/apis/config/webhook/validation"
	cmwebhook "github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
	"github.com/cert-manager/cert-manager/pkg/webhook/options"
)

// webhookFlags takes upstream's webhook flags as they are: the webhook's
// options package is public, and its flags (--secure-port, --healthz-port,
// --dynamic-serving-*) are what scaleplane's component passes.
func webhookFlags(fs *pflag.FlagSet) func(context.Context) error {
	cfg, err := options.NewWebhookConfiguration()
	if err != nil {
		return func(context.Context) error { return fmt.Errorf("building the default webhook configuration: %w", err) }
	}
	options.AddConfigFlags(fs, cfg)
	return func(ctx context.Context) error {
		if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(cfg.FeatureGates); err != nil {
			return usageError{fmt.Errorf("--feature-gates: %w", err)}
		}
		if errs := validation.ValidateWebhookConfiguration(cfg, nil); len(errs) > 0 {
			return usageError{fmt.Errorf("invalid webhook configuration: %w", errs.ToAggregate())}
		}
		if err := logf.ValidateAndApply(&cfg.Logging); err != nil {
			return usageError{fmt.Errorf("invalid logging flags: %w", err)}
		}
		log := logf.FromContext(ctx)
		log.Info("starting cert-manager webhook", "version", versionString(),
			"securePort", cfg.SecurePort, "healthzPort", cfg.HealthzPort,
			"caSecret", cfg.TLSConfig.Dynamic.SecretNamespace+"/"+cfg.TLSConfig.Dynamic.SecretName)
		// The server serves /healthz (ready once it has a serving
		// certificate) and /livez on --healthz-port, the admission
		// endpoints on --secure-port.
		srv, err := cmwebhook.NewCertManagerWebhookServer(log, *cfg)
		if err != nil {
			return fmt.Errorf("building the webhook server: %w", err)
		}
		if err := srv.Run(ctx); err != nil {
			return fmt.Errorf("running the webhook server: %w", err)
		}
		return nil
	}
}
