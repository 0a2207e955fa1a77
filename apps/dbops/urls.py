"""dbops' URLs: health tiers under health/ and the Prometheus scrape at metrics; mount them under any prefix."""

from django.urls import path

from dbops import views
from dbops.health import all_checks, readiness_checks

app_name = "dbops"
urlpatterns = [
    path("health/", views.FullHealthView.as_view(checks=all_checks()), name="health"),
    path("health/live", views.live, name="health_live"),
    path("health/ready", views.ReadinessView.as_view(checks=readiness_checks()), name="health_ready"),
    path("health/database/health", views.database_health, name="database_health"),
    path("health/database/performance", views.database_performance, name="database_performance"),
    path("health/database/backup/status", views.backup_status, name="backup_status"),
    path("health/database/schema", views.database_schema, name="database_schema"),
    path("health/database/migrations/status", views.migrations_status, name="migrations_status"),
    path("health/database/insights", views.database_insights, name="database_insights"),
    path("metrics", views.metrics, name="metrics"),
]
