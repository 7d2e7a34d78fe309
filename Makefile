# Every target sets up what it needs: a virtual env in .venv with the pinned packages,
# and (when run as root on Debian) the system packages the tests use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-security fuzz lint bench soak sys wrk clean iac-tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# redis-server for the Redis half of the store conformance suite and the store bench; xmlsec1 for pysaml2
# (the test SAML IdP) and the independent check of the SAML assertions the broker mints; chromium for the
# browser test of the SAML HTTP-POST page (playwright drives /usr/bin/chromium).
# caddy for tests/deploy/test_proxy_rollout.py (the compose example's TLS proxy, run on loopback); npm (with
# node) installs axe-core for the accessibility check (tests/a11y).
SYS_PROGRAMS := redis-server:redis-server xmlsec1:xmlsec1 chromium:chromium caddy:caddy node:nodejs npm:npm
sys:
	@for pair in $(SYS_PROGRAMS); do prog=$${pair%%:*}; pkg=$${pair##*:}; \
	  if ! command -v $$prog >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null; \
	    else echo "$$prog missing: install it (Debian: apt-get install $$pkg)"; exit 1; fi; \
	  fi; \
	done

demo: $(STAMP) sys
	$(BIN)/sts-broker demo

# axe-core, pinned by tests/a11y/package-lock.json, for the accessibility check.
A11Y := tests/a11y/node_modules/axe-core/axe.min.js
$(A11Y): tests/a11y/package-lock.json
	npm ci --prefix tests/a11y --no-audit --no-fund
	touch $(A11Y)

test: $(STAMP) sys iac-tools $(A11Y)
	$(BIN)/python -m pytest -q

# The security suite alone (it is also part of `make test`, its fuzz tests bounded to a few seconds each).
test-security: $(STAMP) sys
	$(BIN)/python -m pytest -q tests/security

# The same suite with the hypothesis "fuzz" profile (tests/security/conftest.py): many more examples per
# fuzz test (FUZZ_EXAMPLES, default 1500) and a longer deadline per example; prints what each test saw.
fuzz: $(STAMP) sys
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q --timeout 3600 --hypothesis-show-statistics tests/security

lint: $(STAMP)
	$(BIN)/ruff check broker tests bench
	$(BIN)/mypy

# checkov, the static IaC checker tests/deploy runs on examples/deploy/kubernetes and the Dockerfile, in a venv
# of its own: its pins (boto3 1.35, ...) clash with the broker's.
IAC_VENV := .venv-iac
IAC_STAMP := $(IAC_VENV)/.installed-checkov-3.3.30
$(IAC_STAMP):
	test -x $(IAC_VENV)/bin/python || $(PY) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install -q checkov==3.3.30
	touch $(IAC_STAMP)
iac-tools: $(IAC_STAMP)

# wrk (a real HTTP load generator) for the token exchange benchmark.
wrk:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk missing: install it (Debian: apt-get install wrk)"; exit 1; fi; \
	fi

# Two replicas on one Redis under mixed traffic for two minutes (bench/soak.py).
soak: $(STAMP) sys
	$(BIN)/python -m bench.soak

bench: $(STAMP) wrk sys
	$(BIN)/python -m bench
	$(BIN)/python -m bench.token_exchange
	$(BIN)/python -m bench.store_redis
	$(BIN)/python -m bench.store_redis_cluster
	$(BIN)/python -m bench.acs_attack
	$(BIN)/python -m bench.seams
	$(BIN)/python -m bench.sts_paths
	$(BIN)/python -m bench.cli_credential_process
	$(BIN)/python -m bench.signing_keys
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.picker_render

clean:
	rm -rf $(VENV) $(IAC_VENV) .pytest_cache .mypy_cache .ruff_cache
