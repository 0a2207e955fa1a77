# Production image: gunicorn + Django's native psycopg pool. Needs DATABASE_URL, SECRET_KEY and ALLOWED_HOSTS.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_ENV=production \
    PORT=8000

# pg_dump/pg_restore for backups: they must be at least the server's major version.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin dbops

WORKDIR /app
COPY requirements.txt .
# Every package pinned with its sha256 (the lock file): a changed or substituted download fails the build.
RUN pip install --no-deps --require-hashes -r requirements.txt

# The code stays owned by root (the runtime user cannot change it); dbops itself installs as the django-dbops
# distribution, exactly as a site that adopts it would install it.
COPY . .
RUN pip install --no-deps . \
    && rm -rf build apps/*.egg-info
# Build-time values only let the settings load for collectstatic; nothing connects to this database. Production
# settings refuse a weak SECRET_KEY even here: a random one is made for this step and thrown away.
RUN DATABASE_URL=postgres://build@localhost/build ALLOWED_HOSTS=build \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var/backups && chown -R dbops:dbops /app/var

USER dbops
EXPOSE 8000
# Liveness, not readiness: a database outage must not make the orchestrator kill healthy web processes.
# It asks the port gunicorn binds (PORT, as gunicorn.conf.py reads it), not a fixed 8000.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/live\", timeout=4)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "project.wsgi:application"]
