// Package bench measures scaleplane side by side in one run on one
// machine and reports ratios, never absolute timings in unit tests:
// throughput and, steadier on shared cores, CPU time per request read
// from /proc before and after each run. `make bench` runs it.
package bench
