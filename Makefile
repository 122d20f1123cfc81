# sealbus — make targets. `make help` lists them.
GO       ?= go
FUZZTIME ?= 30s
BIN      ?= bin
export PATH := /usr/local/go/bin:$(PATH)
# Version and revision stamped into the binary (for --version and the image tag).
GIT_VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
STAMP        := -X main.buildVersion=$(GIT_VERSION) -X main.buildRevision=$(GIT_REVISION)

.PHONY: help demo build test test-unit test-integration test-external bench fuzz lint image images

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

demo: ## run the demo on the embedded dev server
	$(GO) run ./cmd/sealbus demo

build: ## build the sealbus CLI into ./bin (not on PATH: run bin/sealbus, or add $$PWD/bin to PATH)
	CGO_ENABLED=0 $(GO) build -ldflags='$(STAMP)' -o $(BIN)/sealbus ./cmd/sealbus

image: ## build the FROM scratch image sealbus/sealbus:<version> (CLI and dev server); no registry needed
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags='-s -w $(STAMP)' -o $(BIN)/image/sealbus ./cmd/sealbus
	@v=$$($(BIN)/image/sealbus --version | awk '{print $$2}' | tr -c 'A-Za-z0-9_.\n-' '-'); \
	if [ "$$v" = "" ] || [ "$$v" = "-devel-" ]; then v=dev; fi; \
	docker build -q -t sealbus/sealbus:$$v -f deploy/Dockerfile $(BIN)/image >/dev/null && \
	echo "built image sealbus/sealbus:$$v" && echo "sealbus/sealbus:$$v" > $(BIN)/image/tag

images: image ## every image deploy/compose.yaml runs (sealbus, nats-server, examples), tags written to deploy/.env
	cd integration && $(GO) run ./cmd/images -sealbus $$(cat ../$(BIN)/image/tag) -env ../deploy/.env

test: lint test-unit test-integration test-external ## everything: lint, unit, in-process, container and external-module tests

test-unit: ## unit and in-process tests of the root module
	$(GO) test -count=1 -timeout 20m ./...

test-integration: ## container tests (testcontainers-go); skip without Docker unless CI is set
	cd integration && $(GO) test -count=1 -timeout 45m -v ./...

test-external: ## a module outside sealbus's (examples/automation) provisions, publishes and consumes with the public API only
	cd examples/automation && $(GO) run . && $(GO) test -count=1 ./...

bench: ## benchmarks of the envelope and the SDK
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
