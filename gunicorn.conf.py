"""Gunicorn settings for dbops (`gunicorn --config gunicorn.conf.py project.wsgi`).

Workers and threads come from the validated dbops config (WEB_CONCURRENCY, GUNICORN_THREADS), so a bad
environment stops the master with one line before any worker starts. The bind address follows gunicorn's own
rules: $PORT binds 0.0.0.0:$PORT, otherwise --bind or 127.0.0.1:8000.
"""

import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from dbops.conf import from_env, read_dotenv

try:
    read_dotenv(Path(__file__).resolve().parent / ".env")
    _dbops = from_env(base_dir=Path(__file__).resolve().parent)
except ImproperlyConfigured as exc:
    sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
    sys.exit(1)

wsgi_app = "project.wsgi:application"
worker_class = "gthread"
workers = _dbops.web_workers
threads = _dbops.web_threads
# Never preload: a pool opened in the master before fork is shared, and broken, in every worker.
preload_app = False
accesslog = "-"
graceful_timeout = 20

if _dbops.prometheus_multiproc_dir:
    # prometheus_client multiprocess mode: every worker writes its metrics to files in this folder and
    # /metrics adds them up. Stale files from an earlier run would be added too: clear them at start.

    def on_starting(server):
        folder = Path(_dbops.prometheus_multiproc_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()

    def child_exit(server, worker):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
