# Two commands matter: `make run` (the loopback demo) and `make test` (everything CI runs).
# Both set themselves up: a .venv with the project installed, a self-signed loopback TLS
# certificate, and, for tests, the Debian tools the interop tests drive.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STATE  := state
CERT   := $(STATE)/tls/sbc.crt
KEY    := $(STATE)/tls/sbc.key
DEBIAN_TOOLS := sipp:sip-tester sipsak:sipsak openssl:openssl rtpengine:rtpengine-daemon gcc:gcc \
                kamailio:kamailio baresip:baresip-core logrotate:logrotate
CODEC_BUILT  := build/mypyc/.built

.PHONY: run test lint unit tools venv clean bench compiled pure

# The users file holds password hashes and the state directory the TLS key: the SBC warns at start
# when others may read them, so the demo keeps them private too. twistd.pid (in the checkout) is
# where `sbc-ctl reload` looks by default, so that it reloads the demo.
run: $(STAMP) $(CERT) compiled
	chmod 600 etc/users.txt && chmod 700 $(STATE)
	$(VENV)/bin/twistd -n --pidfile=twistd.pid sbc --config etc/sbc.toml

# Everything on the compiled codec, then the codec's own tests (and the server's, which feed it
# hostile bytes) again as pure Python: the code sbc runs where nothing could be compiled.
test: $(STAMP) $(CERT) tools lint compiled
	$(PY) -m pytest -q tests
	SBC_PURE=1 $(PY) -m pytest -q tests/test_sip_*.py tests/test_server.py tests/test_server_fuzz.py tests/test_compiled.py

unit: $(STAMP) compiled
	$(PY) -m pytest -q tests --ignore=tests/interop

# `make bench` compares sbc with Kamailio and Sippy B2BUA (about 20 minutes; QUICK=1: about 3).
bench: $(STAMP) compiled
	QUICK=$(QUICK) $(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check sbc tests twisted bench setup.py
	$(VENV)/bin/mypy

venv: $(STAMP)

# editable_mode=compat puts the checkout itself on sys.path, which is what lets Twisted's plugin
# loader find twisted/plugins/sbc_plugin.py without an __init__.py there.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

# The SIP codec (sbc/sip) compiled in place by mypyc from the same annotations mypy checks: about a
# third less CPU per call. Rebuilt whenever a source changes (importing sbc refuses a stale build);
# where it cannot be built (no C compiler), sbc runs the same code as pure Python.
compiled: $(CODEC_BUILT)

$(CODEC_BUILT): $(STAMP) setup.py sbc/compiled.py $(wildcard sbc/sip/*.py)
	@mkdir -p $(dir $@)
	@echo "compiling the SIP codec with mypyc"
	@if SBC_MYPYC=1 $(PY) setup.py -q build_ext --inplace >build/mypyc.log 2>&1; then \
	    touch sbc/sip/*.so $@; \
	else \
	    rm -f sbc/sip/*.so; tail -5 build/mypyc.log; \
	    echo "could not compile the SIP codec (build/mypyc.log): sbc runs it as pure Python"; \
	fi

pure:
	rm -rf sbc/sip/*.so build/mypyc build/lib.* build/temp.*

$(CERT):
	@command -v openssl >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
	mkdir -p $(dir $(CERT))
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=sbc.loopback \
	    -addext subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost \
	    -keyout $(KEY) -out $(CERT) 2>/dev/null
	chmod 600 $(KEY)

# Install the Debian tools the interop tests drive, when missing and when we may (root). Kamailio's
# package starts its own service on 5060 where systemd runs: the tests start their own, so it is stopped.
tools:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	    command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "installing$$missing"; \
	        DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	        systemctl disable --now kamailio >/dev/null 2>&1 || true; \
	    else echo "missing Debian packages:$$missing (run as root or install them)"; fi; \
	fi

clean: pure
	rm -rf $(VENV) $(STATE) build twisted/plugins/dropin.cache
