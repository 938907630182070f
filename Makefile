# The two set-up commands of the README: `make demo` and `make test`.
# Both create the virtualenv on first use and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck pytest conformance bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# System packages the tests need: gpg verifies OpenPGP signatures for real; Debian's chromium
# is the browser the web view's Playwright tests drive (Playwright never downloads one);
# systemd-analyze verifies the unit `install service` writes (it needs no running systemd);
# docker.io runs d2g tasks (tests/docker/dockerd.sh starts dockerd when none runs) with
# busybox-static as the base image's only binary (the d2g tests skip where Docker cannot run).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v gpg >/dev/null 2>&1 || { \
	  echo "installing gnupg (needed by the tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gnupg; }
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium (needed by the web view's browser tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	@command -v systemd-analyze >/dev/null 2>&1 || { \
	  echo "installing systemd (systemd-analyze, needed by the tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq systemd; }
	@{ command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 \
	   && dpkg -s busybox-static >/dev/null 2>&1; } || { \
	  echo "installing docker.io and busybox-static (needed by the d2g tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq docker.io busybox-static \
	  || echo "warning: could not install docker.io/busybox-static; the d2g tests will skip"; }

demo: $(VENV)/.installed
	$(BIN)/python -m generic_worker.demo $(if $(SERVE),--serve)

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: $(VENV)/.installed system-deps
	$(BIN)/pytest

# The contract tests as a conformance suite: against the deployment named by TASKCLUSTER_ROOT_URL,
# TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN (a client with scope `*`) when all three are
# set, else against an embedded tc-local (docs/tc-local.md, "Conformance suite").
conformance: $(VENV)/.installed
	TCLOCAL_CONFORMANCE=1 $(BIN)/pytest tests/tclocal -rs

# pytest runs last so that its summary line is the last thing printed.
test: lint typecheck pytest

bench: $(VENV)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build src/*.egg-info
