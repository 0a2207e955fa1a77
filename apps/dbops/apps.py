from django.apps import AppConfig
from django.core import checks


class DbopsConfig(AppConfig):
    name = "apps.dbops"
    label = "dbops"
    verbose_name = "Database operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks as dbops_checks

        checks.register(dbops_checks.check_psycopg_implementation)
        checks.register(dbops_checks.check_engine_outside_strict_environments)
        checks.register(dbops_checks.check_pool_covers_threads)
        checks.register(dbops_checks.check_pool_fits_server, checks.Tags.database)
        checks.register(dbops_checks.check_pgbouncer_compatibility)

        from django.conf import settings
        from django.db.backends.signals import connection_created

        if settings.DBOPS.breaker.enabled:
            from django.core.signals import got_request_exception

            from .middleware import mark_database_failure

            got_request_exception.connect(mark_database_failure, dispatch_uid="dbops.breaker_failure")

        if settings.DBOPS.query_monitoring:
            from .monitoring import attach_query_timer

            connection_created.connect(attach_query_timer, dispatch_uid="dbops.query_timer")

        from . import alerts, signals

        signals.breaker_transition.connect(alerts.on_breaker_transition, dispatch_uid="dbops.alert_breaker")
        signals.backup_finished.connect(alerts.on_backup_finished, dispatch_uid="dbops.alert_backup")
        signals.migration_run_finished.connect(alerts.on_migration_run_finished, dispatch_uid="dbops.alert_migration")
