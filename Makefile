# Telemetra developer tasks.  `make help` lists them.
#
# Everything Python lives in $(VENV) inside the repo; dependencies are
# installed with the lock file constraints.txt (`make lock` regenerates it).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# The suite runs in this many processes (pytest-xdist), a test file per process at a time:
# three on two cores, since many tests wait on real servers and brokers (650 s against 780 s).
PYTEST_WORKERS ?= 3
# Debian packages needed by the test suite (override for other releases,
# e.g. `make system-deps PG_DEB=postgresql-17`).
PG_DEB ?= postgresql-15
MQTT_DEB ?= mosquitto
MQTT_CLIENTS_DEB ?= mosquitto-clients
REDIS_DEB ?= redis-server

VENV_PY = $(VENV)/bin/python
PIP = $(VENV_PY) -m pip
# pip is quiet unless asked: `make run INSTALL_QUIET=` shows what it does.
INSTALL_QUIET ?= -qq --disable-pip-version-check

# The web UI (web/, built by Vite into the package's static folder; DESIGN.md, The web UI).
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.js
WEB_BUILT = telemetra/web/static/index.html
WEB_MODULES = web/node_modules/.package-lock.json
CHROMIUM_DEB ?= chromium

.PHONY: help venv install install-test system-deps run demo test bench lock clean clean-db web screenshots

help:
	@echo "make install       create $(VENV) and install telemetra (editable, locked)"
	@echo "make install-test  same, with the [test] extra"
	@echo "make system-deps   apt-get install PostgreSQL server, mosquitto, redis-server if missing"
	@echo "make web           build the web UI (web/ -> telemetra/web/static/) if missing or stale"
	@echo "make run           migrate the database and serve, quietly (TELEMETRA_HOST/_PORT/_WORKERS)"
	@echo "make demo          fill the database of \`make run\` with a month of sample data"
	@echo "make test          run the test suite (PYTEST_ARGS='...' to pass options)"
	@echo "make bench         run benchmarks (bench/ingest.py, queries.py, mqtt.py, live.py)"
	@echo "make screenshots   save PNGs of the web UI's main pages into docs/screenshots/"
	@echo "make lock          regenerate constraints.txt from a fresh venv"
	@echo "make clean         remove $(VENV) and caches (keeps the database)"
	@echo "make clean-db      remove the SQLite database ./telemetra.db, to start over"

venv: install

# Stamp files live inside the venv: they are redone when pyproject.toml or
# constraints.txt change, and disappear with the venv.  The [test] install is a
# superset, so it also satisfies the plain install stamp.
install: $(VENV)/.stamp-install

$(VENV)/.stamp-install: pyproject.toml constraints.txt
	@echo "installing Telemetra into $(VENV) (about 30 s, once)"
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install $(INSTALL_QUIET) --upgrade pip
	@$(PIP) install $(INSTALL_QUIET) -c constraints.txt -e .
	@touch $@

install-test: $(VENV)/.stamp-install-test

$(VENV)/.stamp-install-test: pyproject.toml constraints.txt
	@echo "installing Telemetra and its test tools into $(VENV) (about 30 s, once)"
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install $(INSTALL_QUIET) --upgrade pip
	@$(PIP) install $(INSTALL_QUIET) -c constraints.txt -e '.[test]'
	@touch $@ $(VENV)/.stamp-install

# PostgreSQL server binaries (tests start a throwaway cluster with initdb) and
# the mosquitto MQTT broker with its clients (mosquitto_ctrl initialises the dynamic
# security plugin for the tests), redis-server (tests start throwaway ones for the
# readings broadcast, tests/redis_server.py) and chromium (the browser tests in tests/web/
# drive Debian's, never a downloaded one).  Installs only what is missing.
system-deps:
	@set -e; \
	pkgs=""; \
	if [ -n "$$TELEMETRA_PG_BIN" ] && [ -x "$$TELEMETRA_PG_BIN/initdb" ]; then :; \
	elif ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	else pkgs="$$pkgs $(PG_DEB)"; fi; \
	if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
		pkgs="$$pkgs $(MQTT_DEB)"; \
	fi; \
	if ! command -v mosquitto_ctrl >/dev/null 2>&1; then pkgs="$$pkgs $(MQTT_CLIENTS_DEB)"; fi; \
	if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then \
		pkgs="$$pkgs $(REDIS_DEB)"; \
	fi; \
	if [ ! -x /usr/bin/chromium ]; then pkgs="$$pkgs $(CHROMIUM_DEB)"; fi; \
	if [ -z "$$pkgs" ]; then echo "system-deps: PostgreSQL, mosquitto, its clients, redis-server and chromium present"; exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else \
		echo "system-deps: missing Debian packages:$$pkgs" >&2; \
		echo "system-deps: not root and no sudo; as root run: apt-get install -y$$pkgs" >&2; \
		exit 1; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "system-deps: apt-get not found; install manually:$$pkgs" >&2; \
		echo "system-deps: (or set TELEMETRA_PG_BIN to a dir containing initdb/pg_ctl)" >&2; \
		exit 1; \
	fi; \
	echo "system-deps: installing$$pkgs"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$pkgs

# A development superadmin so a fresh clone can log in (only for `make run`; production
# refuses this password).  `make run TELEMETRA_WORKERS=2` (or the variable in the
# environment or .env) serves with that many worker processes.  Quiet: only warnings and
# errors are logged (`make run TELEMETRA_LOG_LEVEL=INFO` logs each request); `serve`
# migrates the database itself, once, before its workers start.  The last lines say where
# to go.
run: export TELEMETRA_ADMIN_USERNAME ?= admin
run: export TELEMETRA_ADMIN_PASSWORD ?= telemetra-admin
run: export TELEMETRA_LOG_LEVEL ?= WARNING
run: install web
	@base=$$($(VENV_PY) -c 'from telemetra.settings import get_settings as g; s = g(); \
	  host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host; \
	  print(f"http://{host}:{s.port}")' 2>/dev/null) || base="(see the error below)"; \
	if [ "$$TELEMETRA_ADMIN_PASSWORD" = telemetra-admin ]; then \
	  login="$$TELEMETRA_ADMIN_USERNAME / telemetra-admin"; \
	else login="$$TELEMETRA_ADMIN_USERNAME (TELEMETRA_ADMIN_PASSWORD)"; fi; \
	echo ""; \
	echo "Telemetra is starting at $$base/  (API docs: $$base/docs)"; \
	echo "  log in as $$login"; \
	echo "  a month of sample data: make demo (in another terminal)"; \
	echo "  quiet: make run TELEMETRA_LOG_LEVEL=INFO logs each request; Ctrl+C stops"; \
	exec $(VENV)/bin/telemetra serve

# A month of sample data in the database `make run` serves (same settings, same superadmin,
# who owns the organization filled); `telemetra demo` migrates first, as `serve` does.
# Run it again and nothing is duplicated. `make demo DEMO_ARGS="--days 7"` for other options.
DEMO_ARGS ?=
demo: export TELEMETRA_ADMIN_USERNAME ?= admin
demo: export TELEMETRA_ADMIN_PASSWORD ?= telemetra-admin
demo: install
	$(VENV)/bin/telemetra demo $(DEMO_ARGS)

test: system-deps install-test web
	$(VENV_PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The web UI's npm packages (exactly web/package-lock.json), then its build, each redone when
# what it is made from is newer.  Quiet unless something fails.
web: $(WEB_BUILT)

$(WEB_MODULES): web/package.json web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "web: npm not found: the web UI needs Node.js 20.19+ with npm" >&2; exit 1; }
	@echo "web: installing the web UI's npm packages (web/package-lock.json)"
	@cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

$(WEB_BUILT): $(WEB_MODULES) $(WEB_SOURCES)
	@echo "web: building the web UI into telemetra/web/static/"
	@cd web && npm run --silent build
	@touch $@

# PNGs of the main pages for the README, from a throwaway server with a little sample data.
screenshots: system-deps install-test web
	$(VENV_PY) web/screenshots.py docs/screenshots

bench: install-test
	@command -v wrk >/dev/null 2>&1 || { \
		echo "bench: installing wrk (the HTTP load generator)"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk \
		|| { $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive \
		     apt-get install -y --no-install-recommends wrk; }; }
	$(VENV_PY) bench/ingest.py
	$(VENV_PY) bench/queries.py
	$(VENV_PY) bench/mqtt.py
	$(VENV_PY) bench/live.py

# Resolve the direct pins in pyproject.toml (+ [test]) afresh, without the old
# lock, in a throwaway venv, and freeze the result.
lock:
	@set -e; \
	tmp=$$(mktemp -d); \
	trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip install -e '.[test,load]'; \
	{ \
		echo "# Lock file for pip -c; regenerate with \`make lock\` (fresh venv, pip install '.[test,load]', pip freeze --exclude-editable)."; \
		"$$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -iv '^telemetra'; \
	} > constraints.txt.new; \
	if cmp -s constraints.txt.new constraints.txt; then \
		rm -f constraints.txt.new; echo "lock: constraints.txt unchanged"; \
	else \
		mv constraints.txt.new constraints.txt; echo "lock: wrote constraints.txt"; \
	fi

# Keeps the database (./telemetra.db): to start over, `make clean-db` too.
clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist *.egg-info constraints.txt.new \
		web/node_modules telemetra/web/static
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	@if [ -e telemetra.db ]; then \
	  echo "kept the database ./telemetra.db (make clean-db removes it, to start over)"; fi

# Start over: removes the default SQLite database (not one TELEMETRA_DATABASE_URL names).
clean-db:
	rm -f telemetra.db telemetra.db-wal telemetra.db-shm
