# Two commands do everything on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint gateway gateway-install install clean browser redis

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned by constraints.txt, so later installs don't pull a multi-GB CUDA build
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/xiaoai run $(if $(CONFIG),--config $(CONFIG),)

# Debian's Chromium + ChromeDriver for the browser tests, and a Chinese font so the pages (and their
# screenshots) show characters, not boxes. Where they can't be installed (no apt, not root) the tests are
# skipped, except under CI=true where they fail.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	  fc-list :lang=zh 2>/dev/null | grep -q . || \
	  (command -v apt-get >/dev/null && apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei \
	   >/dev/null) || \
	  echo "make: could not install chromium, chromium-driver and a CJK font; the browser tests will be skipped"

# Debian's redis-server for the GPU-worker tests (each test starts its own on a loopback port and stops
# it). Where it can't be installed those tests are skipped, except under CI=true where they fail.
redis:
	@command -v redis-server >/dev/null || \
	  (command -v apt-get >/dev/null && apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) || \
	  echo "make: could not install redis-server; the GPU-worker tests will be skipped"

test: $(STAMP) browser redis
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# gateway/: `npm ci` only when package-lock.json differs from the last install (the stamp in node_modules
# holds the lock file's hash, the same stamp tests/support/peer.py writes), then start in about a second.
# With WECHATY_PUPPET=<npm package> not installed yet, it is added to gateway/package.json once (commit it).
GATEWAY_STAMP := node_modules/.xiaoai-npm-ci
NPM_QUIET := --no-audit --no-fund --loglevel=error

gateway-install:
	@cd gateway && want=$$(sha256sum package-lock.json | cut -d' ' -f1) && \
	if [ "$$(cat $(GATEWAY_STAMP) 2>/dev/null)" != "$$want" ]; then \
	  echo "make: installing the gateway's Node packages (once per package-lock.json)"; \
	  npm ci $(NPM_QUIET) && echo "$$want" > $(GATEWAY_STAMP); \
	fi
	@if [ -n "$(WECHATY_PUPPET)" ] && [ ! -d "gateway/node_modules/$(WECHATY_PUPPET)" ]; then \
	  echo "make: installing the puppet $(WECHATY_PUPPET) into gateway/"; \
	  cd gateway && npm install $(NPM_QUIET) --save-exact "$(WECHATY_PUPPET)" && \
	  sha256sum package-lock.json | cut -d' ' -f1 > $(GATEWAY_STAMP); \
	fi

gateway: gateway-install
	cd gateway && WECHATY_PUPPET="$(WECHATY_PUPPET)" exec node index.js

clean:
	rm -rf $(VENV) gateway/node_modules
