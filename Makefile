# dmuc: the two commands a newcomer needs.
#
#   make run    start two sites (fairfax: master, raleigh: mirror) on this machine
#   make test   install everything, then run the whole suite (pytest, then trial),
#               the two-site tests again with the services on a direct link, and
#               the unit tests on the oldest supported Twisted (22.4)
#   make demo   play a conversation across the two sites, print what crossed the link
#   make bench  stock Prosody against dmuc (through Prosody and on its own direct
#               link) on two sites: bench/results/latest.json, docs/benchmarks.md
#               (about 13 minutes on two cores)
#
# Both install what they need: a virtualenv with dmuc and its test tools in
# .venv, and Debian's prosody package (apt-get; sudo when not root).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all install prosody test pytest trial direct legacy run demo bench soak clean

all: test

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "dmuc needs Python 3.11 or newer (PYTHON=$(PYTHON) is older)"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

prosody:
	@command -v prosody >/dev/null 2>&1 || { \
	  echo "Installing Prosody (Debian package)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq prosody >/dev/null; }
	@# The package may start a system-wide instance; the tests run their own.
	@-$(SUDO) service prosody stop >/dev/null 2>&1 || true

# The tests that run two real sites (tests/harness/sites.py): `make direct`
# runs them once more with the master and the mirror talking over dmuc's
# own compressed S2S stream instead of through the two Prosody servers
# (test_deployments, test_harness_tls and test_deploy_examples choose their
# deployments; test_harness and test_tools test the harness and the tools).
TWO_SITE_TESTS := $(shell grep -l "harness.sites import" tests/test_*.py \
                    | grep -v -e test_deployments -e test_harness_tls -e test_harness.py \
                      -e test_deploy_examples -e test_tools)

# The tests that need no network: `make legacy` runs them on the oldest
# Twisted dmuc supports, in a virtualenv of its own.
UNIT_TESTS := $(shell grep -L -e "harness" -e "prosody" tests/test_*.py)
OLDEST_TWISTED := 22.4.0
LEGACY_VENV ?= .venv-twisted-$(OLDEST_TWISTED)

test: pytest direct trial legacy

pytest: install prosody
	$(PY) -m pytest -q

# The runs after the first keep the soak run to half a minute (each kind of
# event still happens once): the minute-long one is pytest's.
direct: install prosody
	DMUC_DEPLOYMENT=direct DMUC_SOAK_SECONDS=30 $(PY) -m pytest -q $(TWO_SITE_TESTS)

trial: install prosody
	cd $(CURDIR) && DMUC_SOAK_SECONDS=30 $(VENV)/bin/trial tests

$(LEGACY_VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/pip install --quiet --upgrade pip
	$(LEGACY_VENV)/bin/pip install --quiet -e ".[test]" "Twisted[tls]==$(OLDEST_TWISTED)"
	touch $@

legacy: $(LEGACY_VENV)/.installed
	$(LEGACY_VENV)/bin/python -c 'import twisted; print("Twisted", twisted.__version__)'
	$(LEGACY_VENV)/bin/python -m pytest -q $(UNIT_TESTS)

run: install prosody
	$(PY) tools/run_site.py

demo: install prosody
	$(PY) tools/demo.py

bench: install prosody
	$(PY) -m bench.run

# The soak run at length (docs/limits.md); `make test` runs one minute of it
# (and half a minute in each of its later runners).
soak: install prosody
	DMUC_SOAK_SECONDS=1200 $(PY) -m pytest -q -s tests/test_soak.py

clean:
	rm -rf $(VENV) $(LEGACY_VENV) _trial_temp run .pytest_cache *.egg-info
