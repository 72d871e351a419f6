# msgbridge — every target installs what it needs first, so a fresh clone needs only `make run`
# or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/msgbridge/v1/*.proto)
GEN_STAMP := msgbridge/.generated
# The Node.js tools (package.json, versions pinned by package-lock.json): buf, which lints
# protos/ and checks them for breaking changes, and the Node.js client test's gRPC libraries.
NODE_STAMP := node_modules/.installed
BUF := node_modules/.bin/buf

.PHONY: install proto lint breaking test run bench bench-grown clean test-postgres test-media-s3 reliability soak adversarial

install: $(STAMP) $(GEN_STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	# compat mode: a .pth file puts the project root on the path, so the generated package
	# msgbridge/ (made after this step) is importable too.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

# npm ci installs exactly the lockfile's versions. --ignore-scripts: no package needs its install
# script (buf's only links its binary, which bin/buf finds without it); --prefer-offline takes
# what the npm cache holds without asking the registry again.
$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

proto: $(STAMP)
	rm -f $(GEN_STAMP)
	$(MAKE) $(GEN_STAMP)

# The generated package `msgbridge.v1` is shared by server/ and client/; it is never committed.
$(GEN_STAMP): $(PROTOS) $(STAMP)
	rm -rf msgbridge && mkdir -p msgbridge/v1
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iprotos \
		--python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. $(PROTOS)
	touch msgbridge/__init__.py msgbridge/v1/__init__.py msgbridge/py.typed
	touch $(GEN_STAMP)

lint: install
	$(BIN)/ruff check server client tests
	$(BIN)/mypy server client tests/bench
	$(BUF) lint
	$(MAKE) --no-print-directory breaking

# `buf breaking`: the working tree's protos/ against the protos before this change (buf.yaml
# says which rules). "Before" is, off main, the merge base with main (a branch's commits and
# uncommitted edits); on main itself — CI's fresh clone, where HEAD is main — and where there is
# no main, HEAD~1: main before its last commit (a branch lands as one merge commit, so its whole
# change is checked).
# BREAKING_AGAINST=REF compares with another commit. The old protos come from `git archive`, so
# a worktree, a detached HEAD or a branch without an upstream all work; a shallow clone cannot
# (its history is missing) and says so.
BREAKING_AGAINST ?=
breaking: $(NODE_STAMP)
	@set -eu; ref='$(BREAKING_AGAINST)'; \
	if [ -z "$$ref" ]; then \
		main=$$(git rev-parse -q --verify main || true); \
		if [ -n "$$main" ] && [ "$$main" != "$$(git rev-parse HEAD)" ]; then \
			ref=$$(git merge-base HEAD main); \
		elif [ "$$(git rev-parse --is-shallow-repository)" = true ]; then \
			echo "buf breaking: a shallow clone has no earlier protos (git fetch --unshallow)" >&2; \
			exit 1; \
		elif git rev-parse --verify -q HEAD~1 >/dev/null; then ref=HEAD~1; \
		else echo "buf breaking: no earlier commit to compare with"; exit 0; fi; \
	fi; \
	old=$$(mktemp -d); trap 'rm -rf "$$old"' EXIT; \
	git archive -o "$$old/protos.tar" "$$ref" protos; \
	tar -x -C "$$old" -f "$$old/protos.tar"; \
	echo "buf breaking: protos/ against $$ref ($$(git rev-parse --short "$$ref"))"; \
	$(BUF) breaking --against "$$old/protos"

test: lint
	$(BIN)/pytest -q

# The suite again with every service on PostgreSQL (127.0.0.1:5432, role postgres): each test
# gets a database of its own, dropped afterwards. Fails, never skips, when the server is down.
test-postgres: install
	MSGBRIDGE_TEST_DATABASE=postgres $(BIN)/pytest -q -m "not postgres"

# The media suites again with every file in an S3-compatible store: moto's S3 server on
# 127.0.0.1, started by the tests (docs/media.md, "Storage").
test-media-s3: install
	MSGBRIDGE_TEST_BLOBS=s3 $(BIN)/pytest -q tests/media tests/service/test_media.py

# Python only: the Node.js tools are for the checks (make lint, make test).
run: $(STAMP) $(GEN_STAMP)
	$(BIN)/msgbridge serve --demo --outbound-allow 127.0.0.1

bench: install
	$(BIN)/python -m tests.bench

# The service on a store that holds history (tests/bench/grown.py); BENCH_OUT as for bench.
bench-grown: install
	$(BIN)/python -m tests.bench --grown

RELIABILITY_ARGS ?=
SOAK_MINUTES ?= 10

# Two replicas on PostgreSQL, two sidecars and the fake provider, SIGKILLed at random under load;
# prints the invariants with their counts (default 5,000 webhooks, 1,000 sends, 10 kills). Then
# queued sends (50 conversations × 20 ordered messages, QUEUE mode and synchronous) while replicas
# and the provider are SIGKILLed (8 kills): none stuck, lost, sent twice or out of order. About one
# webhook in five, and 100 more during the queued phase, is an MMS whose files the replicas fetch
# into one moto S3 server: each released once, in time, each file kept or its error; no hold left.
# RELIABILITY_ARGS="--conversations 20 --per-conversation 10 --queued-kills 4" runs a smaller one.
reliability: install
	$(BIN)/python -m tests.reliability $(RELIABILITY_ARGS)

# Minutes of subscribers coming and going; prints each process's memory at start and end.
soak: install
	$(BIN)/python -m tests.reliability --soak --minutes $(SOAK_MINUTES)

# Hostile input against real processes over real sockets: each case's status, the servers'
# resident memory (under 300 MB) and an unrelated gRPC call's latency (under 250 ms) while it
# runs, and a good webhook afterwards; ends with "adversarial: N passed, M failed".
# ADVERSARIAL_ARGS="--only bodies/" runs a subset.
ADVERSARIAL_ARGS ?=
adversarial: install
	$(BIN)/python -m tests.adversarial $(ADVERSARIAL_ARGS)

clean:
	rm -rf $(VENV) msgbridge node_modules .mypy_cache .pytest_cache .ruff_cache
