from django.urls import path

from . import views
from .health import all_checks, readiness_checks

app_name = "dbops"
urlpatterns = [
    path("", views.FullHealthView.as_view(checks=all_checks()), name="health"),
    path("live", views.live, name="health_live"),
    path("ready", views.ReadinessView.as_view(checks=readiness_checks()), name="health_ready"),
    path("database/health", views.database_health, name="database_health"),
    path("database/performance", views.database_performance, name="database_performance"),
    path("database/backup/status", views.backup_status, name="backup_status"),
    path("database/schema", views.database_schema, name="database_schema"),
    path("database/migrations/status", views.migrations_status, name="migrations_status"),
]
