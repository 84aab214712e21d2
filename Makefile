# eventsvc: `make help` lists the targets.
#
# Every tool is pinned: the code generators as Go tools in go.mod, buf in
# buf.go.mod (kept apart because it drags in ~80 modules). Nothing needs to be
# installed by hand beyond Go itself (and gcc, for the race detector).

SHELL := /bin/bash
GO_PACKAGES := ./...
# Built binaries: buf, golangci-lint, govulncheck and eventsvc. Git-ignored.
BIN := bin
# buf is built once into bin/ and reused: on a clean machine building it is
# a large part of the first `make test`, and `go tool` would check it again
# on every call. It is rebuilt when buf.go.mod or buf.go.sum change.
BUF := $(BIN)/buf
# The race detector's build of every package is shared by vet, the tests,
# and the binaries the tests build (eventsvc, nats-server): one build of
# the whole dependency graph instead of two.
GOFLAGS_TEST := -race
FUZZTIME ?= 60s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Build bin/eventsvc and run it in make's place (flags: ARGS="--data-dir /tmp/d").
	go build -o $(BIN)/eventsvc ./cmd/eventsvc
	exec $(BIN)/eventsvc $(ARGS)

.PHONY: test
test: vet lint lint-go vulncheck check-generated check-generated-clients breaking unit ## Everything CI runs: vet, linters, govulncheck, generation checks, go test -race.

.PHONY: test-short
test-short: ## The quick loop (under a minute warm): vet and go test -short, no race detector, no clients, browser or process tests.
	go vet $(GO_PACKAGES)
	go test -short -count=1 $(GO_PACKAGES)

.PHONY: unit
unit: ## go test -race over every package.
	go test $(GOFLAGS_TEST) -count=1 $(GO_PACKAGES)

.PHONY: cluster-test
cluster-test: ## The slow cluster fault tests alone (make test runs them when EVENTSVC_CLUSTER_TESTS=1, as CI does).
	EVENTSVC_CLUSTER_TESTS=1 go test $(GOFLAGS_TEST) -count=1 -run Cluster -v ./cmd/eventsvc/

.PHONY: vet
vet: ## go vet and gofmt.
	go vet $(GOFLAGS_TEST) $(GO_PACKAGES)
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' | grep -v '^gen/')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# golangci-lint and govulncheck are pinned like buf, each in a go.mod of its
# own (lint.go.mod, vuln.go.mod) so that their dependencies stay out of the
# service's.
GOLANGCI_LINT := $(BIN)/golangci-lint
GOVULNCHECK := $(BIN)/govulncheck
# The vulnerability database, built from the pinned golang.org/x/vulndb
# module's OSV files (vuln.go.dev cannot be reached from every machine that
# builds this; a newer database is a version bump in vuln.go.mod).
VULNDB := $(BIN)/vulndb

$(GOLANGCI_LINT): lint.go.mod lint.go.sum
	go build -modfile=lint.go.mod -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

$(GOVULNCHECK): vuln.go.mod vuln.go.sum
	go build -modfile=vuln.go.mod -o $@ golang.org/x/vuln/cmd/govulncheck

$(VULNDB): vuln.go.mod vuln.go.sum
	go build -modfile=vuln.go.mod -o $(BIN)/indexdb golang.org/x/vulndb/cmd/indexdb
	rm -rf $@.tmp && $(BIN)/indexdb -vulns "$$(go list -modfile=vuln.go.mod -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" -out $@.tmp
	rm -rf $@ && mv $@.tmp $@

.PHONY: lint-go
lint-go: $(GOLANGCI_LINT) ## golangci-lint with the short set in .golangci.yml.
	$(GOLANGCI_LINT) run $(GO_PACKAGES)

.PHONY: vulncheck
vulncheck: $(GOVULNCHECK) $(VULNDB) ## govulncheck: fails on a reachable vulnerability in a required module, warns on the standard library's.
	@set -o pipefail; $(GOVULNCHECK) -db file://$(abspath $(VULNDB)) -format json $(GO_PACKAGES) | go run ./scripts/vulnreport

$(BUF): buf.go.mod buf.go.sum
	go build -modfile=buf.go.mod -o $@ github.com/bufbuild/buf/cmd/buf

.PHONY: buf
buf: $(BUF) ## Build the pinned buf into bin/.

.PHONY: lint
lint: $(BUF) ## buf lint and buf format.
	$(BUF) lint
	$(BUF) format --diff --exit-code

.PHONY: generate
generate: $(BUF) ## Regenerate gen/ from proto/.
	rm -rf gen/sociocs gen/openapiv2
	$(BUF) generate

.PHONY: check-generated
check-generated: $(BUF) ## Fail if gen/ differs from a fresh generation.
	BUF=$(abspath $(BUF)) scripts/check-generated.sh

.PHONY: generate-clients
generate-clients: $(BUF) ## Regenerate the Python and TypeScript clients' code (needs protoc, grpc_python_plugin, npm ci).
	rm -rf clients/python/sociocs/events/v1/*_pb2* clients/typescript/src/gen
	$(BUF) generate --template buf.gen.python.yaml
	$(BUF) generate --template buf.gen.ts.yaml

.PHONY: check-generated-clients
check-generated-clients: $(BUF) ## Fail if the clients' generated code differs from a fresh generation.
	BUF=$(abspath $(BUF)) scripts/check-generated-clients.sh

.PHONY: breaking
breaking: $(BUF) ## buf breaking against HEAD and the previous commit.
	BUF=$(abspath $(BUF)) scripts/check-breaking.sh

.PHONY: bench
bench: ## Run the Go benchmarks (figures in README.md).
	go test -run '^$$' -bench . -benchmem $(GO_PACKAGES)

.PHONY: screenshot
screenshot: ## Refresh docs/web-view.png (and -dark.png) from the web view in headless Chromium (apt-get install chromium).
	EVENTSVC_SCREENSHOT=$(CURDIR)/docs/web-view.png EVENTSVC_REQUIRE_BROWSER_TESTS=1 \
		go test -count=1 -run '^TestWebViewScreenshot$$' ./internal/app/

.PHONY: fuzz
fuzz: ## Fuzz every fuzz target in turn, FUZZTIME each (default 60s; CI runs 15s).
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh
