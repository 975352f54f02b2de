# Two commands set everything up on a fresh Debian machine: `make demo` and `make test`.
# Each goal first installs with apt what it needs (.ci/deps: which goal needs what, and why).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The fleet test's controller (ansible-core, ansible-lint): a venv of its own, see
# tests/fleet/requirements.in for why.
FLEET_VENV := .venv-fleet
FLEET_STAMP := $(FLEET_VENV)/.installed
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

.PHONY: demo test test-online test-slow test-tljh test-fleet reliability bench lint lock clean

# deps.GOAL: the Debian packages GOAL needs; listed first, so that they are there before .venv.
deps.%:
	@sh .ci/deps $*

$(STAMP): pyproject.toml | deps.venv
	$(PYTHON) -m venv $(VENV)
	$(PIP_ENV) $(BIN)/pip install -q --upgrade pip
	$(PIP_ENV) $(BIN)/pip install -q -e '.[dev]'
	# the pure-Python wheels each bundle's zipapp vendors, so that later builds work offline
	$(BIN)/python -m tljh_lock.bundle.zipapp --prefetch
	touch $@

# The whole job on a fixture upstream, outputs in build/demo/ (needs root: groupadd --prefix).
demo: deps.demo $(STAMP)
	$(BIN)/python -m tests.demo

# The default suite, offline (needs root, as the demo).
test: deps.test $(STAMP)
	$(BIN)/ruff check tljh_lock tests
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Against the real PyPI and npm registry (reachable from CI); not part of `make test`.
test-online: deps.test-online $(STAMP)
	$(BIN)/python -m pytest -m "online and not slow" -o addopts=""

# End-to-end on booted Debian systems (needs root: debootstrap, systemd-nspawn), TLJH's own
# integration suite included (about 30 min in all).
test-slow: deps.test-slow $(STAMP)
	$(BIN)/python -m pytest -m slow -o addopts=""

# TLJH's own integration suite against tljh-lock servers alone (part of test-slow, about 25 min;
# docs/tljh-integration.md).
test-tljh: deps.test-tljh $(STAMP)
	$(BIN)/python -m pytest -m tljh -o addopts="" tests/e2e/test_tljh.py

$(FLEET_STAMP): tests/fleet/requirements.txt
	$(PYTHON) -m venv $(FLEET_VENV)
	$(PIP_ENV) $(FLEET_VENV)/bin/pip install -q --require-hashes --no-deps \
	  -r tests/fleet/requirements.txt
	touch $@

# The Ansible collection (ansible/): ansible-lint, ansible-test sanity, then three booted
# Debian servers on a private bridge rolled out from one mirror (needs root). -s: the figures
# (changed counts, hubs answering, where the broken roll-out stopped) go to the log.
test-fleet: deps.test-fleet $(STAMP) $(FLEET_STAMP)
	$(BIN)/python -m pytest -m fleet -o addopts="" -s tests/fleet/test_collection.py \
	  tests/fleet/test_rollout.py

# Kills, hostile inputs, a full disk, races: regenerates docs/reliability.md (needs root).
reliability: deps.reliability $(STAMP)
	$(BIN)/python -m tests.reliability --seed 20261127

bench: deps.bench $(STAMP)
	$(BIN)/python -m tests.bench

# The committed lock: PyPI and npm live, GitHub and nodejs.org through upstream-facts; then
# its TLJH source pin verified against the archive there (tree hash and declared metadata).
lock: deps.lock $(STAMP)
	$(BIN)/tljh-lock update $(FACTS_MIRRORS)
	$(BIN)/tljh-lock check
	TLJH_SHARED=$(SHARED) TLJH_LOCK_REQUIRE_FACTS=1 $(BIN)/python -m pytest -q -o addopts="" \
	  tests/test_committed_lock.py -k source_pin

lint: deps.lint $(STAMP)
	$(BIN)/ruff check tljh_lock tests
	$(BIN)/mypy

clean:
	rm -rf build $(VENV) $(FLEET_VENV)
