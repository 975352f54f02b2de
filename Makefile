# Two commands set everything up on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The content-addressed store lives in the project: `make demo` changes nothing outside it.
export TLJH_LOCK_STORE := $(CURDIR)/build/store
# This machine's (and many machines') pip configuration leaks into installs: ignore it.
PIP_ENV := env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
	PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1

# GitHub release downloads and nodejs.org are out of reach here: their published checksums
# are reproduced in shared/upstream-facts, laid out like the upstream URLs.
SHARED ?= $(abspath ../shared)
FACTS_MIRRORS := --mirror https://github.com/=file://$(SHARED)/upstream-facts/github.com/ \
	--mirror https://nodejs.org/=file://$(SHARED)/upstream-facts/nodejs.org/

.PHONY: demo test test-online test-slow test-tljh reliability bench lint lock clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "python3-venv is missing; installing it (needs root)"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PIP_ENV) $(BIN)/pip install -q --upgrade pip
	$(PIP_ENV) $(BIN)/pip install -q -e '.[dev]'
	# the pure-Python wheels each bundle's zipapp vendors, so that later builds work offline
	$(BIN)/python -m tljh_lock.bundle.zipapp --prefetch
	touch $@

demo: $(STAMP)
	$(BIN)/python -m tests.demo

test: $(STAMP)
	$(BIN)/ruff check tljh_lock tests
	$(BIN)/python -m pytest

# Against the real PyPI and npm registry (reachable from CI); not part of `make test`.
test-online: $(STAMP)
	$(BIN)/python -m pytest -m "online and not slow" -o addopts=""

# End-to-end on a booted Debian system; needs root, debootstrap and systemd-nspawn.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -o addopts=""

# TLJH's own integration suite against a tljh-lock server, alone (also part of test-slow).
test-tljh: $(STAMP)
	$(BIN)/python -m pytest -m tljh -o addopts="" tests/test_e2e_tljh.py

# Kills, hostile inputs, a full disk, races: regenerates docs/reliability.md (needs root).
reliability: $(STAMP)
	$(BIN)/python -m tests.reliability --seed 20261127

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# The committed lock: PyPI and npm live, GitHub and nodejs.org through upstream-facts; then
# its TLJH source pin verified against the archive there (tree hash and declared metadata).
lock: $(STAMP)
	$(BIN)/tljh-lock update $(FACTS_MIRRORS)
	$(BIN)/tljh-lock check
	TLJH_SHARED=$(SHARED) TLJH_LOCK_REQUIRE_FACTS=1 $(BIN)/python -m pytest -q -o addopts="" \
	  tests/test_committed_lock.py -k source_pin

lint: $(STAMP)
	$(BIN)/ruff check tljh_lock tests

clean:
	rm -rf build $(VENV)
