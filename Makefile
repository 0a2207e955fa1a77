# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Django 6.0 needs Python >= 3.12: the first python3.12 that really runs (pyenv shims may not).
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	"$$p" -c '' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV6 ?= .venv-django6
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
TOOLS := var/tools
# The PostgreSQL major version of the test clusters' binaries (its extension packages: hypopg for index advice).
PG_MAJOR ?= 15
# Debian packages for the tests (root with apt-get only). Elsewhere the tests that need one skip; in CI (CI=true)
# a package that cannot be installed fails the run, and so does any test whose tool is missing (tests/tiers.py).
APT_INSTALL = { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	(apt-get install --yes --no-install-recommends $(1) >/dev/null 2>&1 || \
	 (apt-get update >/dev/null 2>&1 && apt-get install --yes --no-install-recommends $(1) >/dev/null 2>&1)); }
# promtool alone, out of Debian's prometheus package (installing the package would start a server).
INSTALL_PROMTOOL = { command -v apt-get >/dev/null && mkdir -p $(TOOLS)/deb && \
	(cd $(TOOLS)/deb && apt-get download prometheus >/dev/null 2>&1) && \
	dpkg-deb -x $(TOOLS)/deb/prometheus_*.deb $(TOOLS)/deb/root && \
	cp $(TOOLS)/deb/root/usr/bin/promtool $(TOOLS)/promtool && rm -rf $(TOOLS)/deb; }
# postgres_exporter alone, out of Debian's package (installing it would start a service): bench/insights.py.
INSTALL_PG_EXPORTER = { command -v apt-get >/dev/null && mkdir -p $(TOOLS)/deb && \
	(cd $(TOOLS)/deb && apt-get download prometheus-postgres-exporter >/dev/null 2>&1) && \
	dpkg-deb -x $(TOOLS)/deb/prometheus-postgres-exporter_*.deb $(TOOLS)/deb/root && \
	cp $(TOOLS)/deb/root/usr/bin/prometheus-postgres-exporter $(TOOLS)/postgres_exporter && \
	cp $(TOOLS)/deb/root/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml \
	   $(TOOLS)/postgres_exporter_queries.yaml && rm -rf $(TOOLS)/deb; }

.PHONY: venv system-deps patroni patroni-cluster run test test-fast test-system test-django6 lint lock format \
	bench bench-smoke localdb-stop clean
# A missing test tool: a warning on a developer's machine, a failure in CI.
MISSING = { if [ -n "$$CI" ]; then echo "$(1) could not be installed: CI runs every tier"; exit 1; \
	else echo "$(1) not installed: the tests that need it will be skipped"; fi; }

# The pinned requirements, then dbops itself (apps/dbops, the django-dbops distribution) in editable mode.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(VENV)/.installed

## run: venv, project-local PostgreSQL (when DATABASE_URL is unset), a shared cache (Redis when there is one),
## migrate, the alert evaluator in the background, serve on 127.0.0.1:8000
run: venv
	@if [ -z "$$DATABASE_URL" ]; then $(PY) manage.py localdb start; fi
	$(PY) manage.py migrate --noinput
	@export CACHE_URL="$${CACHE_URL:-$$($(PY) ops/dev/shared_cache.py)}"; \
	echo ""; \
	echo "dbops is serving on http://$(HOST):$(PORT)/"; \
	echo "  admin:     http://$(HOST):$(PORT)/admin/  (create a user: $(PY) manage.py createsuperuser)"; \
	echo "  liveness:  http://$(HOST):$(PORT)/health/live"; \
	echo "  readiness: http://$(HOST):$(PORT)/health/ready"; \
	echo "  cache:     $${CACHE_URL:-per-process (no Redis found)}; alert evaluator: every minute (var/evaluator.log)"; \
	echo "Ctrl-C stops the web server and the evaluator; the database keeps running ($(PY) manage.py localdb stop)."; \
	mkdir -p var; $(PY) manage.py alerts evaluate --loop >var/evaluator.log 2>&1 & evaluator=$$!; \
	trap 'kill $$evaluator 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

## test: venv, lint, then the whole suite against a throwaway PostgreSQL cluster (or TEST_DATABASE_URL)
# Services some tests start themselves (redis-server for the shared circuit-breaker state).
system-deps:
	@command -v redis-server >/dev/null || $(call APT_INSTALL,redis-server) || $(call MISSING,redis-server)
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || \
		$(call APT_INSTALL,chromium chromium-driver) || $(call MISSING,chromium)
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || $(call APT_INSTALL,pgbouncer) || \
		$(call MISSING,pgbouncer)
	@command -v pgbackrest >/dev/null || $(call APT_INSTALL,pgbackrest) || $(call MISSING,pgbackrest)
	@command -v stunnel4 >/dev/null || $(call APT_INSTALL,stunnel4) || $(call MISSING,stunnel4)
	@command -v valgrind >/dev/null || $(call APT_INSTALL,valgrind) || $(call MISSING,valgrind)
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || $(call APT_INSTALL,nginx-light) || $(call MISSING,nginx)
	@command -v promtool >/dev/null || test -x $(TOOLS)/promtool || $(INSTALL_PROMTOOL) || $(call MISSING,promtool)
	@command -v check_postgres >/dev/null || $(call APT_INSTALL,check-postgres) || $(call MISSING,check_postgres)
	@ls /usr/share/postgresql/$(PG_MAJOR)/extension/hypopg.control >/dev/null 2>&1 || \
		$(call APT_INSTALL,postgresql-$(PG_MAJOR)-hypopg) || $(call MISSING,hypopg)
	@test -x $(TOOLS)/postgres_exporter || $(INSTALL_PG_EXPORTER) || $(call MISSING,postgres_exporter)
	@$(MAKE) --no-print-directory patroni || $(call MISSING,Patroni/etcd)

# Patroni 4 from PyPI (Debian's 3.0.2 lost acknowledged writes after a frozen leader woke) in its own virtualenv,
# built with a Python the postgres OS user can run; etcd from Debian. For the HA tests and `make patroni-cluster`.
PATRONI_PYTHON ?= /usr/bin/python3
patroni:
	@command -v etcd >/dev/null || $(call APT_INSTALL,etcd-server)
	@$(PATRONI_PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(call APT_INSTALL,python3-venv)
	@test -x $(TOOLS)/patroni/bin/patroni || { $(PATRONI_PYTHON) -m venv $(TOOLS)/patroni && \
		$(TOOLS)/patroni/bin/pip install --quiet --disable-pip-version-check "patroni[psycopg3,etcd3]==4.1.5"; }

## patroni-cluster: etcd + 3 Patroni-managed PostgreSQL nodes on loopback until Ctrl-C (prints DATABASE_URL)
patroni-cluster: venv patroni
	$(PY) bench/patroni.py

# pytest's exit 5 (no test collected) is a failure, never a pass. TEST_WORKERS test processes (pytest-xdist), each
# with its own throwaway cluster, a test file apiece (module fixtures are not built twice); 0 runs in one process.
TEST_WORKERS ?= 2
PYTEST = { $(1) -m pytest -n $(TEST_WORKERS) --dist loadfile $(2) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing (exit 5 is not a pass)"; fi; exit $$rc; }

test: venv lint system-deps
	@$(call PYTEST,$(PY),)

## test-fast: the pure and database tiers (no other process): the edit-test loop, under 2 minutes
test-fast: venv
	@$(call PYTEST,$(PY),--tier pure --tier database)

## test-system: the system tier alone (real servers, clusters, subprocesses, the browser)
test-system: venv system-deps
	@$(call PYTEST,$(PY),--tier system)

## test-django6: Django 6.0 (Python 3.12): the pure and database tiers plus the system smoke (the system tier runs
## once, on Django 5.2, in `make test`); TIERS="" runs every tier there too
$(VENV6)/.installed: requirements.txt requirements-dev.txt requirements-django6.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: Django 6.0 target skipped"; exit 1; }
	@test -d $(VENV6) || "$(PYTHON312)" -m venv $(VENV6)
	$(VENV6)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV6)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-django6.txt
	$(VENV6)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

TIERS ?= --tier pure --tier database --tier smoke
test-django6: $(VENV6)/.installed system-deps
	@$(call PYTEST,$(VENV6)/bin/python,$(TIERS))

## lint: every pre-commit hook on every file (ruff, ruff format, django-upgrade), then mypy with django-stubs
lint: venv
	$(VENV)/bin/pre-commit run --all-files --show-diff-on-failure
	$(VENV)/bin/mypy

## lock: recompile the pinned, hashed requirements from requirements.in and requirements-dev.in
LOCK = $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
lock: venv
	$(LOCK) -o requirements.txt requirements.in
	$(LOCK) -o requirements-dev.txt requirements-dev.in

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: every benchmark, full length (minutes); results go to docs/benchmarks.md by hand
bench: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@command -v wrk >/dev/null || apt-get install --yes wrk >/dev/null 2>&1 || echo "wrk not installed: Python loader"
	@for script in $$(grep -l __main__ bench/*.py); do echo "== $$script"; $(PY) $$script || exit 1; done

## bench-smoke: seconds-long run of each benchmark (CI runs these through the test suite)
bench-smoke: venv
	@for script in $$(grep -l __main__ bench/*.py); do echo "== $$script"; $(PY) $$script --smoke || exit 1; done

localdb-stop: venv
	$(PY) manage.py localdb stop

clean:
	rm -rf $(VENV) $(VENV6) .pytest_cache .ruff_cache

print-python312:
	@echo "$(PYTHON312)"
