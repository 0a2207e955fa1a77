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
# Debian packages for the tests (root with apt-get only; otherwise the tests that need them say they skip).
APT_INSTALL = { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	(apt-get install --yes --no-install-recommends $(1) >/dev/null 2>&1 || \
	 (apt-get update >/dev/null 2>&1 && apt-get install --yes --no-install-recommends $(1) >/dev/null 2>&1)); }
# promtool alone, out of Debian's prometheus package (installing the package would start a server).
INSTALL_PROMTOOL = { command -v apt-get >/dev/null && mkdir -p $(TOOLS)/deb && \
	(cd $(TOOLS)/deb && apt-get download prometheus >/dev/null 2>&1) && \
	dpkg-deb -x $(TOOLS)/deb/prometheus_*.deb $(TOOLS)/deb/root && \
	cp $(TOOLS)/deb/root/usr/bin/promtool $(TOOLS)/promtool && rm -rf $(TOOLS)/deb; }

.PHONY: venv system-deps patroni patroni-cluster run test test-django6 lint format bench bench-smoke localdb-stop clean

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
	@command -v redis-server >/dev/null || $(call APT_INSTALL,redis-server) || \
		echo "redis-server not installed: the shared-breaker tests will be skipped"
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || \
		$(call APT_INSTALL,chromium chromium-driver) || echo "chromium not installed: the browser test will be skipped"
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || $(call APT_INSTALL,pgbouncer) || \
		echo "pgbouncer not installed: the PgBouncer tests will be skipped"
	@command -v pgbackrest >/dev/null || $(call APT_INSTALL,pgbackrest) || \
		echo "pgbackrest not installed: the point-in-time recovery tests will be skipped"
	@command -v stunnel4 >/dev/null || $(call APT_INSTALL,stunnel4) || \
		echo "stunnel4 not installed: the pgBackRest-repository-in-a-bucket test will be skipped"
	@command -v promtool >/dev/null || test -x $(TOOLS)/promtool || $(INSTALL_PROMTOOL) || \
		echo "promtool not installed: the Prometheus rule tests will be skipped"
	@$(MAKE) --no-print-directory patroni || echo "Patroni/etcd not installed: the Patroni tests will be skipped"

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

test: venv lint system-deps
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing (exit 5 is not a pass)"; fi; exit $$rc

## test-django6: the same suite on Django 6.0 (Python 3.12)
$(VENV6)/.installed: requirements.txt requirements-dev.txt requirements-django6.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: Django 6.0 target skipped"; exit 1; }
	@test -d $(VENV6) || "$(PYTHON312)" -m venv $(VENV6)
	$(VENV6)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV6)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-django6.txt
	$(VENV6)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

test-django6: $(VENV6)/.installed system-deps
	@$(VENV6)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing (exit 5 is not a pass)"; fi; exit $$rc

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

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
