# sealbus — make targets. `make help` lists them.
GO       ?= go
FUZZTIME ?= 30s
BIN      ?= bin
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: help demo build test test-unit test-integration test-external bench bench-go fuzz lint image

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

demo: ## run the demo on the embedded dev server
	$(GO) run ./cmd/sealbus demo

build: ## build the sealbus CLI into ./bin
	CGO_ENABLED=0 $(GO) build -o $(BIN)/sealbus ./cmd/sealbus

test: lint test-unit test-integration test-external ## everything: lint, unit, in-process, container and external-module tests

test-unit: ## unit and in-process tests of the root module
	$(GO) test -count=1 -timeout 20m ./...

test-integration: ## container tests (testcontainers-go); skip without Docker unless CI is set
	cd integration && $(GO) test -count=1 -timeout 45m -v ./...

test-external: ## a module outside sealbus's (examples/automation) provisions, publishes and consumes with the public API only
	cd examples/automation && $(GO) run . && $(GO) test -count=1 ./...

bench: build ## a short `sealbus bench` (pubsub and latency, sealbus beside raw nats.go); docs/PERFORMANCE.md has the full commands
	$(BIN)/sealbus bench pubsub --raw --msgs 10000 --runs 3
	$(BIN)/sealbus bench latency --raw --msgs 2000 --rate 500

bench-go: ## Go benchmarks of the envelope, accounts and the SDK
	$(GO) test -run '^$$' -bench . -benchmem ./envelope/ ./accounts/ ./bus/... ./consumers/

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg; \
		done; \
	done

lint: ## gofmt and go vet (both modules)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd integration && $(GO) vet ./...
	cd examples/automation && $(GO) vet ./...
