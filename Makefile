# dmuc: the two commands a newcomer needs.
#
#   make run    start two sites (fairfax: master, raleigh: mirror) on this machine
#   make test   install everything, then run the whole suite (pytest, then trial)
#   make demo   play a conversation across the two sites, print what crossed the link
#   make bench  stock Prosody against dmuc on two sites: bench/results/latest.json,
#               docs/benchmarks.md (about 12 minutes on two cores)
#
# Both install what they need: a virtualenv with dmuc and its test tools in
# .venv, and Debian's prosody package (apt-get; sudo when not root).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all install prosody test pytest trial run demo bench clean

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

test: pytest trial

pytest: install prosody
	$(PY) -m pytest -q

trial: install prosody
	cd $(CURDIR) && $(VENV)/bin/trial tests

run: install prosody
	$(PY) tools/run_site.py

demo: install prosody
	$(PY) tools/demo.py

bench: install prosody
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) _trial_temp run .pytest_cache *.egg-info
