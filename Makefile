# eventsvc: `make help` lists the targets.
#
# Every tool is pinned: the code generators as Go tools in go.mod, buf in
# buf.go.mod (kept apart because it drags in ~80 modules). Nothing needs to be
# installed by hand beyond Go itself.

SHELL := /bin/bash
BUF   := go tool -modfile=buf.go.mod buf
GO_PACKAGES := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start the service with defaults (HTTP 127.0.0.1:8080, gRPC 127.0.0.1:9090).
	go run ./cmd/eventsvc

.PHONY: test
test: vet lint check-generated breaking unit ## Everything CI runs: vet, buf lint/format/breaking, generation check, go test -race.

.PHONY: unit
unit: ## go test -race over every package.
	go test -race -count=1 $(GO_PACKAGES)

.PHONY: vet
vet: ## go vet and gofmt.
	go vet $(GO_PACKAGES)
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' | grep -v '^gen/')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

.PHONY: lint
lint: ## buf lint and buf format.
	$(BUF) lint
	$(BUF) format --diff --exit-code

.PHONY: generate
generate: ## Regenerate gen/ from proto/.
	rm -rf gen/sociocs gen/openapiv2
	$(BUF) generate

.PHONY: check-generated
check-generated: ## Fail if gen/ differs from a fresh generation.
	scripts/check-generated.sh

.PHONY: breaking
breaking: ## buf breaking against HEAD and the previous commit.
	scripts/check-breaking.sh

.PHONY: bench
bench: ## Run the Go benchmarks (figures in README.md).
	go test -run '^$$' -bench . -benchmem $(GO_PACKAGES)

.PHONY: screenshot
screenshot: ## Refresh docs/web-view.png (and -dark.png) from the web view in headless Chromium (apt-get install chromium).
	EVENTSVC_SCREENSHOT=$(CURDIR)/docs/web-view.png EVENTSVC_REQUIRE_BROWSER_TESTS=1 \
		go test -count=1 -run '^TestWebViewScreenshot$$' ./internal/app/

.PHONY: fuzz
fuzz: ## Fuzz the webhook converter for 60 s.
	go test -run '^$$' -fuzz FuzzConvert -fuzztime 60s ./internal/webhook/
