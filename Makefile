# Kelpie: `make run` and `make test` do all set-up on a fresh Debian 12 machine.
SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all deps deps-test web build run test test-rust test-web test-e2e test-bench-smoke lint fmt bench fuzz clean

all: build

# Debian packages and npm packages the build, the tests and the demo desktop need.
deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

# `npm install`, not `npm ci`: Vite lists an optional Windows-only package that the registry
# mirror may not serve, and `npm ci` refuses a lock file without it.
web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	cd web && npm install --no-audit --no-fund

tests/e2e/node_modules/.package-lock.json: tests/e2e/package-lock.json
	cd tests/e2e && npm ci --no-audit --no-fund

web: web/node_modules/.package-lock.json
	cd web && npm run build

build: deps web
	$(CARGO) build --release --workspace --bins

run: build
	target/release/kelpie $(ARGS)

lint: web
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd web && npm run typecheck && npm run lint

# Release profile: shares the dependencies `make build` already compiled.
test-rust: web
	$(CARGO) test --release --workspace

test-web: web/node_modules/.package-lock.json
	cd web && npm test
	node --test tests/lib/ bench/

test-e2e: build deps-test tests/e2e/node_modules/.package-lock.json
	tests/e2e/run.sh

# A 5-second run of the benchmark harness on Kelpie alone, so it cannot rot.
test-bench-smoke: build tests/e2e/node_modules/.package-lock.json
	BENCH_SMOKE=1 bench/run.sh

test: deps-test build lint test-rust test-web test-e2e test-bench-smoke

bench: build tests/e2e/node_modules/.package-lock.json
	bench/run.sh

clean:
	$(CARGO) clean
	rm -rf web/dist web/node_modules tests/e2e/node_modules

# Bounded fuzzing of every parser of browser input on stable Rust (see fuzz/README.md).
# FUZZ_TIME: seconds per target (4 targets).
fuzz:
	FUZZ_TIME="$(or $(FUZZ_TIME),30)" fuzz/run.sh
