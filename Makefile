# scaleplane: the two set-up commands are `make up` and `make test`.
SHELL := /bin/bash
# One build configuration for everything: scaleplane, the tests, the service
# images and the cached tools are all built static (no cgo) with -trimpath,
# so Go's build cache compiles a shared dependency (grpc, protobuf, the
# Pulumi SDK, x/net ...) once for all of them instead of once per
# configuration: minutes of a cold make up on two cores.
export GOFLAGS := -buildvcs=false -mod=readonly -trimpath
export CGO_ENABLED := 0
CACHE ?= $(HOME)/.cache/scaleplane
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(CACHE)/golangci-lint-$(GOLANGCI_VERSION)/golangci-lint
STACK ?= local
OUT ?= out

include Makefile.services

.PHONY: up render test test-unit bench lint fmt vet tools clean help preflight

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# Every job starts with cmd/setup, which compiles in seconds: it checks the
# machine (packages, root, cgroups, the node's ports, disk, the Go module
# proxy, Maven Central), names every missing piece together, and as root
# installs the missing Debian packages (internal/preflight's one list) in one
# apt-get before any long build.
SETUP := go run ./cmd/setup

# The platform on this machine: the embedded cluster (unless KUBECONFIG names
# one), the service images, the real engine, each phase timed by cmd/setup.
# The first run builds the tools into $(CACHE) (Kubernetes, etcd, Pulumi CLI
# and provider: see docs/local.md for the measured time).
.PHONY: down cluster-up cluster-down
SCALEPLANE_BIN := $(OUT)/bin/scaleplane
$(SCALEPLANE_BIN): FORCE
	@go build -o $@ ./cmd/scaleplane
FORCE:

up: ## deploy STACK (local: embedded cluster, images, real `pulumi up`, rollouts); STACK=prod: plain `pulumi up -s prod`
ifeq ($(STACK),local)
	@$(SETUP) up -stack $(STACK) -bin $(SCALEPLANE_BIN)
else
	pulumi up -s $(STACK)
endif

down: $(SCALEPLANE_BIN) ## destroy STACK's resources, then stop the embedded cluster (nothing left running)
	@if [ -n "$$KUBECONFIG" ] || $(SCALEPLANE_BIN) cluster status >/dev/null 2>&1; then $(SCALEPLANE_BIN) destroy --stack $(STACK); fi
	@if [ -z "$$KUBECONFIG" ]; then $(SCALEPLANE_BIN) cluster down; fi

cluster-up: $(SCALEPLANE_BIN) ## start the embedded one-node Kubernetes (idempotent)
	$(SCALEPLANE_BIN) cluster up

cluster-down: $(SCALEPLANE_BIN) ## stop it; PURGE=1 also deletes its state
	$(SCALEPLANE_BIN) cluster down $(if $(PURGE),--purge)

render: ## render every stack into out/<stack>
	for s in local dev staging prod; do go run ./cmd/scaleplane render --stack $$s --out $(OUT)/$$s || exit 1; done

test: ## every test: unit (mocks), rendered configs on the real nginx/haproxy, real servers, the embedded cluster
	@$(SETUP) test
	go run ./cmd/scaleplane tools
	go vet -tags bench ./bench/
	go test -tags bench -count=1 -run 'TestParseResponse|TestFixedRate|TestCapacityFigureStandsWithinNoise' ./bench/
	go test -count=1 -timeout 40m ./...

test-unit: ## the fast tests only (no real servers)
	go test -count=1 -short ./...

bench: ## side-by-side benchmarks (loopback only, bounded); writes docs/performance.md and its chart
	@$(SETUP) bench
	go test -tags bench -count=1 -v -timeout 30m ./bench/

lint: fmt vet $(GOLANGCI) ## gofmt, go vet and golangci-lint
	$(GOLANGCI) run --build-tags bench ./...

fmt: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet, the benchmarks (build tag bench) included
	go vet ./...
	go vet -tags bench ./bench/

$(GOLANGCI):
	mkdir -p $(dir $@)
	cd /tmp && GOBIN=$(dir $@) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

tools: $(GOLANGCI) ## build the cached tools

JOB ?= up
preflight: ## check this machine for JOB (up, test or bench); installs nothing
	@$(SETUP) check $(JOB)

clean:
	rm -rf $(OUT)
