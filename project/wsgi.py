"""WSGI entry point (gunicorn project.wsgi). Bad settings stop the worker with one line."""

import os

from dbops.entrypoints import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_wsgi_application()
