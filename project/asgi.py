"""ASGI entry point. Bad settings stop the server with one line."""

import os

from dbops.entrypoints import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_asgi_application()
