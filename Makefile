# Two commands on a fresh clone: `make run` and `make test`.
# Both bootstrap the virtualenv themselves and are fast when it is up to date.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= agentvisor.toml.example
LINTED := agentvisor tests examples hatch_build.py $(wildcard bench)

.PHONY: run test lint typecheck layers unit check bench clean console console-test chromium docs promtool shells redis

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "agentvisor needs Python 3.11+ (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

# The web console: built into agentvisor/admin/static/ (gitignored) when its sources change.
CONSOLE := web-console
CONSOLE_BUILT := agentvisor/admin/static/index.html
CONSOLE_SOURCES := $(shell find $(CONSOLE)/src $(CONSOLE)/public -type f 2>/dev/null) \
  $(addprefix $(CONSOLE)/,index.html vite.config.ts tsconfig.json package.json)

$(CONSOLE)/node_modules/.installed: $(CONSOLE)/package-lock.json
	@command -v npm >/dev/null || { echo "the web console needs Node.js 20+ and npm to build"; exit 1; }
	cd $(CONSOLE) && npm ci --no-audit --no-fund
	touch $@

$(CONSOLE_BUILT): $(CONSOLE_SOURCES) $(CONSOLE)/node_modules/.installed
	cd $(CONSOLE) && npm run build

console: $(CONSOLE_BUILT)

# Headless Chromium for the console's browser tests (Debian's package; CI runs as root).
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# promtool and the prometheus server, for the checks of contrib/prometheus/: taken out of
# Debian's prometheus package (downloaded, not installed, so no Prometheus service is set up
# or started; the tests start their own on port 0). apt-get update needs root, as CI runs.
PROMTOOL := $(BIN)/promtool
$(PROMTOOL): | $(BIN)/python
	@work=$$(mktemp -d) && cd $$work && \
	  { apt-get download -qq prometheus 2>/dev/null || { \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq && \
	    apt-get download -qq prometheus; }; } && \
	  dpkg-deb -x prometheus_*.deb root && \
	  cp root/usr/bin/prometheus $(CURDIR)/$(BIN)/ && cp root/usr/bin/promtool $(CURDIR)/$@; \
	  status=$$?; rm -rf $$work; exit $$status

promtool: $(PROMTOOL)

# zsh and fish for the shell-completion tests (Debian's packages; bash is there already).
shells:
	@command -v zsh >/dev/null && command -v fish >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends zsh fish; }

# redis-server for the cluster's tests, which start their own (Debian's package; CI runs as root).
redis:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server; }

console-test: $(VENV)/.installed $(CONSOLE_BUILT) chromium
	cd $(CONSOLE) && npm test && npm run e2e

run: $(VENV)/.installed $(CONSOLE_BUILT)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/agentvisor run -c $(CONFIG)

test: $(VENV)/.installed $(CONSOLE_BUILT) $(PROMTOOL) shells redis
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider
	$(MAKE) console-test

unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit -q

check: $(VENV)/.installed
	$(BIN)/agentvisor check -c $(CONFIG)

# Generated reference docs; tests fail when the committed copies are stale.
docs: $(VENV)/.installed
	$(BIN)/python -m agentvisor.config.reference > docs/configuration.md
	$(BIN)/python -m agentvisor.admin.openapi.markdown > docs/api.md

bench: $(VENV)/.installed
	$(BIN)/python bench/supervisor_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
