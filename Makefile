# scaleplane: the two set-up commands are `make up` and `make test`.
SHELL := /bin/bash
export GOFLAGS := -buildvcs=false -mod=mod
CACHE ?= $(HOME)/.cache/scaleplane
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(CACHE)/golangci-lint-$(GOLANGCI_VERSION)/golangci-lint
STACK ?= local
OUT ?= out

include Makefile.services

.PHONY: up render test test-unit bench lint fmt vet tools clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

up: ## render the local stack (the embedded cluster and real `pulumi up` come with the local-cluster issue)
	go run ./cmd/scaleplane render --stack $(STACK) --out $(OUT)/$(STACK)

render: ## render every stack into out/<stack>
	for s in local dev staging prod; do go run ./cmd/scaleplane render --stack $$s --out $(OUT)/$$s || exit 1; done

test: ## every test: unit (mocks), rendered configs on the real nginx/haproxy, real servers
	go test -count=1 -timeout 40m ./...

test-unit: ## the fast tests only (no real servers)
	go test -count=1 -short ./...

bench: ## side-by-side benchmarks (loopback only, bounded); writes docs/performance.md and its chart
	go test -tags bench -count=1 -v -timeout 30m ./bench/

lint: fmt vet $(GOLANGCI) ## gofmt, go vet and golangci-lint
	$(GOLANGCI) run ./...

fmt: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	go vet ./...

$(GOLANGCI):
	mkdir -p $(dir $@)
	cd /tmp && GOBIN=$(dir $@) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

tools: $(GOLANGCI) ## build the cached tools

clean:
	rm -rf $(OUT)
