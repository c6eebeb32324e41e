package ratelimit

// The lease rules, for the external tests whose premises depend on them.
const (
	LeaseMinDemand = leaseMinDemand
	LeaseSpan      = leaseSpan
)
