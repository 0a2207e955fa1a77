"""WSGI entry point (gunicorn project.wsgi). Bad settings stop the worker with one line."""

import os

from django.core.wsgi import get_wsgi_application

from apps.dbops.entrypoints import load_settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
load_settings_or_exit()
application = get_wsgi_application()
