# POSSE - the single entry point for people, CI and `sam build`.
# `make` (or `make help`) lists the targets.

SHELL         := /bin/bash
.DEFAULT_GOAL := help

VENV          := .venv
PY            := $(VENV)/bin/python
LOCAL         := .local
RIE           := $(LOCAL)/bin/aws-lambda-rie
VERSION       ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
FUNCTIONS     := $(notdir $(wildcard functions/*))
GOARCH        ?= arm64
GOOS          ?= linux
GO_LDFLAGS    := -s -w -X github.com/posse-dev/posse/shared/config.Version=$(VERSION)
GO_BUILD      := CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) go build -tags lambda.norpc -trimpath -ldflags='$(GO_LDFLAGS)'
FUZZTIME      ?= 10s
# The Go vulnerability database govulncheck reads, as files: the module
# proxy serves golang.org/x/vulndb (its data/osv holds the OSV entries) and
# its cmd/indexdb builds the database. Pinned, so the check is reproducible;
# to refresh it, set the newest pseudo-version from
# `go list -m -versions golang.org/x/vulndb` or `go list -m golang.org/x/vulndb@latest`.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB        := $(LOCAL)/vulndb/$(VULNDB_VERSION)
# Packages with concurrency of their own, run under the race detector.
RACE_PKGS     := ./shared/ledger/... ./shared/dispatch/... ./shared/connection/... ./shared/vault/... ./shared/ai/... ./shared/llm/...
# The Go toolchain the bootstraps are built with: its standard library ships in
# every bootstrap, so it is pinned here (and in go.mod's go line) to a release
# without known vulnerabilities. The go command fetches it from the module proxy.
export GOTOOLCHAIN        := go1.27.3
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_REGION         ?= us-east-1
export SAM_CLI_TELEMETRY  := 0

.PHONY: help
help: ## List the targets (this text)
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_%-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ------------------------------------------------------------------ tools
$(VENV)/.installed: infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/requirements.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Install the pinned Python tools (moto, cfn-lint, sam) into .venv

$(RIE): go.mod go.sum
	go build -o $(RIE) github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie

.PHONY: rie
rie: $(RIE) ## Build the Lambda Runtime Interface Emulator pinned in go.mod

# ------------------------------------------------------------------ build
# sam build calls build-<LogicalId> with ARTIFACTS_DIR set (BuildMethod: makefile);
# ApiFunction builds ./functions/api, DispatchFunction ./functions/dispatch, ...
build-%Function:
	$(GO_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(shell echo '$*' | tr '[:upper:]' '[:lower:]')

.PHONY: build
build: ## Build every function's bootstrap for Lambda (linux/arm64) into .local/build
	@for f in $(FUNCTIONS); do \
		echo "build $$f (linux/arm64)"; \
		$(GO_BUILD) -o $(LOCAL)/build/$$f/bootstrap ./functions/$$f || exit 1; \
		ls -l $(LOCAL)/build/$$f/bootstrap | awk '{printf "  %s bytes\n", $$5}'; \
	done

.PHONY: sam-build
sam-build: venv ## Run `sam build`: every function for linux/arm64, no Docker (makefile build method, in source)
	$(VENV)/bin/sam build --build-in-source
	@for b in .aws-sam/build/*/bootstrap; do ls -l $$b | awk '{printf "  %s %s bytes\n", $$9, $$5}'; done

# ------------------------------------------------------------------ run
.PHONY: dev
dev: venv rie ## Run the local stack: moto, functions under the RIE, API on 127.0.0.1:3000, platform simulator
	go run ./infra/local $(DEV_FLAGS)

# ------------------------------------------------------------------ checks
.PHONY: fmt
fmt: ## Format the Go code
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: venv ## gofmt check, go vet, cfn-lint and sam validate --lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam validate --lint --template template.yaml

$(VULNDB)/index/db.json:
	@dir=$$(go mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') && \
	  rm -rf $(VULNDB) && go run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns $$dir/data/osv -out $(VULNDB)

.PHONY: vuln
vuln: $(VULNDB)/index/db.json ## govulncheck against the pinned vulnerability database (offline)
	go tool govulncheck -db file://$(abspath $(VULNDB)) ./...

.PHONY: staticcheck
staticcheck: ## staticcheck (pinned in go.mod)
	go tool staticcheck ./...

.PHONY: race
race: venv ## The packages with concurrency of their own under the race detector
	POSSE_INTEGRATION=1 go test -race -count=1 $(RACE_PKGS)

.PHONY: test
test: venv rie lint staticcheck vuln ## Everything: lint, staticcheck, govulncheck, unit + integration tests (moto, RIE, simulator, API fuzzing, isolation matrix), race, a short fuzz run, sam build (arm64)
	POSSE_INTEGRATION=1 POSSE_RIE=$(abspath $(RIE)) go test -count=1 -timeout 12m ./...
	$(MAKE) --no-print-directory race
	go test -run '^$$' -fuzz '^FuzzFit$$' -fuzztime $(FUZZTIME) ./shared/text
	$(MAKE) --no-print-directory sam-build

.PHONY: fuzz-api
fuzz-api: venv rie ## schemathesis against the local stack's OpenAPI document (bounded, fixed seed) and the site isolation matrix; part of `make test`
	POSSE_INTEGRATION=1 POSSE_RIE=$(abspath $(RIE)) go test -count=1 -timeout 10m -run '^(TestAPIFuzz|TestSiteIsolationMatrix|TestIsolationFixturesCoverDocument)$$' -v ./infra/local

.PHONY: test-unit
test-unit: ## Unit tests only (integration tests skip without moto)
	go test ./...

.PHONY: bench
bench: venv rie ## Benchmarks, as ratios against floors measured in the same run (BENCH_ARGS=-only=ai,pipeline for some parts)
	POSSE_RIE=$(abspath $(RIE)) go run ./infra/bench $(BENCH_ARGS)

.PHONY: soak
soak: venv rie ## Fault soak: 1,000 deliveries to 8 platforms under simulator faults, SIGKILLed dispatch runtimes and DLQ redrives; prints the report (SOAK_ARGS=-posts=25 for fewer)
	POSSE_RIE=$(abspath $(RIE)) go run ./infra/soak $(SOAK_ARGS)

# ------------------------------------------------------------------ deploy
.PHONY: deploy
deploy: sam-build ## Deploy to AWS: make deploy ENV=dev (needs AWS credentials)
	$(VENV)/bin/sam deploy --config-env $(or $(ENV),dev)

.PHONY: rotate-keys
rotate-keys: ## Re-encrypt every stored data key under the current KMS key: make rotate-keys TABLE=posse-dev KEY=alias/posse-dev
	go run ./infra/rotatekeys -table $(TABLE) -key $(KEY)

.PHONY: clean
clean: ## Remove build output and local state (keeps .venv)
	rm -rf $(LOCAL) .aws-sam
