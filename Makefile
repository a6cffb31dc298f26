# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv with Python 3.12 when missing and install the project into it.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Python 3.12: on PATH when it answers, else a pyenv build, else the distro's.
PYTHON312 := $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

.PHONY: demo test lint typecheck pytest install system-deps clean web

$(PY):
	@test -n "$(PYTHON312)" || { echo "error: Python 3.12 not found (install python3.12)"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Both distributions, editable: the SDK `clutchcall` (sdk/python) and the server
# `clutchcall-streams` (this directory), which depends on it.
$(STAMP): pyproject.toml sdk/python/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ./sdk/python -e '.[test]'
	@touch $(STAMP)

# The browser SDK (web/, docs/web-sdk.md): npm ci from the lockfile, then the build
# (type check, bundle served at /sdk/streams.js, console). Rebuilt when a source changes.
WEB_DEPS := web/node_modules/.package-lock.json
WEB_STAMP := web/dist/.built
WEB_SRC := $(shell find web/src web/console -type f 2>/dev/null) web/package.json web/tsconfig.json web/build.mjs

$(WEB_DEPS): web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(WEB_DEPS)

$(WEB_STAMP): $(WEB_DEPS) $(WEB_SRC)
	cd web && node build.mjs
	@touch $(WEB_STAMP)

web: $(WEB_STAMP)

# Independent upload clients the upload tests run under node (tests/vod/js: tus-js-client).
UPLOAD_JS_DEPS := tests/vod/js/node_modules/.package-lock.json

$(UPLOAD_JS_DEPS): tests/vod/js/package-lock.json
	cd tests/vod/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $(UPLOAD_JS_DEPS)

install: system-deps $(STAMP) $(WEB_STAMP) $(UPLOAD_JS_DEPS)

# Debian packages the suite runs for real: redis-server (tests start their own),
# promtool (package prometheus) for the alert rules, chromium for the browser tests (tests/web),
# ffprobe (package ffmpeg) as an independent HLS reader of on-demand assets. kubectl (kustomize) comes with the image.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

demo: install
	$(PY) -m cli.main demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check moqt

typecheck: install
	$(VENV)/bin/mypy

# The browser tests (tests/web) run in a phase of their own: Chromium, its fake camera and the
# stacks they drive load both cores, and the e2e tests of the mesh and the ingest must not
# share the machine with them.
# The latency-bounded tests (marker `latency`: several relays, an impairment proxy and a viewer
# in one process, or real-time media on a budget) then run alone, one at a time, so their
# bounds measure our code and not a neighbour test's CPU. Alone is not enough on a shared
# virtual machine: a second of CPU taken by the host (steal time) shows as a latency spike.
# So a latency test that fails runs once more on its own (`--last-failed`), and fails the
# build only if it fails again; the first failure stays in the log above the rerun.
pytest: install
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --ignore=tests/web -m "not latency"
	$(VENV)/bin/pytest -q -n 2 --dist loadfile tests/web -m "not latency"
	$(VENV)/bin/pytest -q -p no:xdist -m latency || \
		$(VENV)/bin/pytest -q -p no:xdist -m latency --last-failed --last-failed-no-failures none

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/node_modules web/dist
