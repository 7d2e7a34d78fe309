# Every target sets up what it needs: a virtual env in .venv with the pinned packages,
# and (when run as root on Debian) the system packages the tests use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-security fuzz lint bench sys wrk clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# redis-server for the Redis half of the store conformance suite and the store bench; xmlsec1 for pysaml2
# (the test SAML IdP) and the independent check of the SAML assertions the broker mints; chromium for the
# browser test of the SAML HTTP-POST page (playwright drives /usr/bin/chromium).
SYS_PROGRAMS := redis-server:redis-server xmlsec1:xmlsec1 chromium:chromium
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

test: $(STAMP) sys
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

# wrk (a real HTTP load generator) for the token exchange benchmark.
wrk:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk missing: install it (Debian: apt-get install wrk)"; exit 1; fi; \
	fi

bench: $(STAMP) wrk sys
	$(BIN)/python -m bench
	$(BIN)/python -m bench.token_exchange
	$(BIN)/python -m bench.store_redis
	$(BIN)/python -m bench.acs_attack
	$(BIN)/python -m bench.seams
	$(BIN)/python -m bench.sts_paths
	$(BIN)/python -m bench.cli_credential_process
	$(BIN)/python -m bench.picker_render

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
