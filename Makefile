# microcap-unwind — environment and common tasks.
#
#   make setup   create/refresh .venv from uv.lock and compile numba's cache (no-op when up to date)
#   make run     one calm scenario run into runs/calm
#   make test    test suite (installs Debian chromium first if missing) — what .ci/run calls
#   make bench   benchmarks
#   make screenshot  the browser test, writing docs/view.png for the README
#   make lint    ruff check + ruff format --check
#
# uv is run as `python3 -m uv` on purpose: with .python-version = 3.12, pyenv's `uv` shim
# only works if uv was pip-installed into 3.12 too, so the module form is the reliable one.
# uv never downloads a Python here (no network but package registries): it uses pyenv's 3.12.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := setup
MAKEFLAGS += --no-builtin-rules

export SOLARA_TELEMETRY_MIXPANEL_ENABLE := false
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
export UV_PROJECT_ENVIRONMENT := .venv
# An activated virtualenv elsewhere must not redirect uv.
unexport VIRTUAL_ENV

PYTHON        ?= python3
UV_VERSION    ?= 0.13.9
UV            ?= $(PYTHON) -m uv
PY_VERSION    := 3.12
VENV          := .venv
VENV_PY       := $(VENV)/bin/python
STAMP         := $(VENV)/.setup.stamp
# Locked in uv.lock with its dependency list emptied ([[tool.uv.dependency-metadata]]);
# the line below is only a fallback if it is ever missing after a sync. Keep both pins equal.
SOLARA_ASSETS := solara-assets==1.58.2
CHROMIUM      := /usr/bin/chromium

.PHONY: setup venv .venv warm browser run test screenshot bench lint format clean

# The project's own packages are byte-compiled too: uv's compile-bytecode covers only the
# venv, and with PYTHONDONTWRITEBYTECODE=1 every `unwind` process would compile model/,
# agents/ and experiments/ from source (~0.13 s). Hash-checked .pyc files are used only
# while their source is unchanged; an edited module is compiled in memory, as before.
setup venv .venv: $(STAMP)
	@$(VENV_PY) -m compileall -q --invalidation-mode checked-hash model agents experiments >/dev/null

$(STAMP): pyproject.toml uv.lock .python-version
	@$(PYTHON) -c 'import sys, importlib.metadata as m; \
	  sys.exit(tuple(int(x) for x in m.version("uv").split(".")[:2]) < (0, 13))' 2>/dev/null \
	  || { echo "setup: installing uv==$(UV_VERSION) for $$($(PYTHON) -c 'import sys; print(sys.executable)')"; \
	       $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
	         "uv==$(UV_VERSION)"; }
	$(UV) sync --frozen --python $(PY_VERSION)
	@$(VENV_PY) -c 'import solara_assets' 2>/dev/null \
	  || $(UV) pip install --python $(VENV_PY) --no-deps "$(SOLARA_ASSETS)"
	@$(MAKE) --no-print-directory warm
	@touch $@

# numba compiles the model's passes on first use and caches them in __pycache__: about 35 s
# of CPU that would otherwise land on a user's first run (46 s instead of 11) or on each test
# worker. `python -m experiments.warm` runs `unwind run jan2024`, which takes nearly every
# compiled path and fills numba's cache, then builds the passes the run calls from Python
# ahead of time into one extension module (numba.pycc, in model/__pycache__), which a run loads in a millisecond
# instead of numba's 0.5 s of cache loads. A failure here only means numba compiles or loads
# on first use, as before, so it does not stop the setup.
warm:
	@echo "setup: compiling the model's numba passes and their ahead-of-time build (once, about 90 s)"
	@$(VENV_PY) -m experiments.warm >/dev/null \
	  || echo "setup: the warm-up run failed; numba will compile on first use" >&2

# Debian's chromium for browser tests (playwright drives it via executable_path; never
# `playwright install`, which downloads a browser build and cannot work here).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "browser: $(CHROMIUM) missing, installing Debian chromium"; \
	  SUDO=""; if [ "$$(id -u)" -ne 0 ]; then SUDO="sudo"; fi; \
	  if ! { $$SUDO apt-get update -qq \
	         && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }; then \
	    echo "WARNING: could not install chromium with apt-get; browser tests may fail or skip" >&2; \
	  fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/unwind run calm --seed 1 --out runs/calm

test: $(STAMP) browser
	$(VENV_PY) -m pytest -n 2 --dist loadgroup tests

screenshot: $(STAMP) browser
	UNWIND_SCREENSHOT=1 $(VENV_PY) -m pytest -q tests/test_view_browser.py

bench: $(STAMP)
	$(VENV)/bin/unwind bench

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
