# msgbridge — every target installs what it needs first, so a fresh clone needs only `make run`
# or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/msgbridge/v1/*.proto)
GEN_STAMP := msgbridge/.generated

.PHONY: install proto lint test run bench clean test-postgres test-media-s3 reliability soak adversarial

install: $(STAMP) $(GEN_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	# compat mode: a .pth file puts the project root on the path, so the generated package
	# msgbridge/ (made after this step) is importable too.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

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
	$(BIN)/mypy server client

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

run: install
	$(BIN)/msgbridge serve --demo --outbound-allow 127.0.0.1

bench: install
	$(BIN)/python -m tests.bench

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
	rm -rf $(VENV) msgbridge .mypy_cache .pytest_cache .ruff_cache
