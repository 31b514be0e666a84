# Telemetra developer tasks.  `make help` lists them.
#
# Everything Python lives in $(VENV) inside the repo; dependencies are
# installed with the lock file constraints.txt (`make lock` regenerates it).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# The suite runs in this many processes (pytest-xdist), a test file per process at a time.
PYTEST_WORKERS ?= 2
# Debian packages needed by the test suite (override for other releases,
# e.g. `make system-deps PG_DEB=postgresql-17`).
PG_DEB ?= postgresql-15
MQTT_DEB ?= mosquitto
MQTT_CLIENTS_DEB ?= mosquitto-clients
REDIS_DEB ?= redis-server

VENV_PY = $(VENV)/bin/python
PIP = $(VENV_PY) -m pip

.PHONY: help venv install install-test system-deps run test bench lock clean

help:
	@echo "make install       create $(VENV) and install telemetra (editable, locked)"
	@echo "make install-test  same, with the [test] extra"
	@echo "make system-deps   apt-get install PostgreSQL server, mosquitto, redis-server if missing"
	@echo "make run           migrate the database, then serve (TELEMETRA_HOST/_PORT/_WORKERS)"
	@echo "make test          run the test suite (PYTEST_ARGS='...' to pass options)"
	@echo "make bench         run benchmarks (bench/ingest.py, queries.py, mqtt.py, live.py)"
	@echo "make lock          regenerate constraints.txt from a fresh venv"
	@echo "make clean         remove $(VENV) and caches"

venv: install

# Stamp files live inside the venv: they are redone when pyproject.toml or
# constraints.txt change, and disappear with the venv.  The [test] install is a
# superset, so it also satisfies the plain install stamp.
install: $(VENV)/.stamp-install

$(VENV)/.stamp-install: pyproject.toml constraints.txt
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints.txt -e .
	touch $@

install-test: $(VENV)/.stamp-install-test

$(VENV)/.stamp-install-test: pyproject.toml constraints.txt
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.stamp-install

# PostgreSQL server binaries (tests start a throwaway cluster with initdb) and
# the mosquitto MQTT broker with its clients (mosquitto_ctrl initialises the dynamic
# security plugin for the tests), and redis-server (tests start throwaway ones for the
# readings broadcast, tests/redis_server.py).  Installs only what is missing.
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
	if [ -z "$$pkgs" ]; then echo "system-deps: PostgreSQL, mosquitto, its clients and redis-server present"; exit 0; fi; \
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
# environment or .env) serves with that many worker processes.
run: export TELEMETRA_ADMIN_USERNAME ?= admin
run: export TELEMETRA_ADMIN_PASSWORD ?= telemetra-admin
run: install
	$(VENV)/bin/telemetra migrate
	$(VENV)/bin/telemetra serve

test: system-deps install-test
	$(VENV_PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

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
	"$$tmp/venv/bin/python" -m pip install -e '.[test]'; \
	{ \
		echo "# Lock file for pip -c; regenerate with \`make lock\` (fresh venv, pip install '.[test]', pip freeze --exclude-editable)."; \
		"$$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -iv '^telemetra'; \
	} > constraints.txt.new; \
	if cmp -s constraints.txt.new constraints.txt; then \
		rm -f constraints.txt.new; echo "lock: constraints.txt unchanged"; \
	else \
		mv constraints.txt.new constraints.txt; echo "lock: wrote constraints.txt"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist *.egg-info constraints.txt.new
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
