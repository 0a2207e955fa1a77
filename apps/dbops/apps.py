"""The Django app: registers dbops' system checks and connects its signal receivers."""

from django.apps import AppConfig
from django.core import checks


class DbopsAppConfig(AppConfig):
    name = "dbops"
    label = "dbops"
    verbose_name = "Database operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dbops import checks as dbops_checks
        from dbops.conf import get_config

        checks.register(dbops_checks.check_config_present)
        # Without settings.DBOPS nothing else can be checked or wired: dbops.E000 says what to add.
        if not dbops_checks.config_is_present():
            return
        config = get_config()
        from django.conf import settings

        from dbops.health.probes import exempt_probes_from_ssl_redirect

        exempt_probes_from_ssl_redirect(settings)
        if "dbops.logins.AccountCoolOffBackend" in settings.AUTHENTICATION_BACKENDS:
            from django.contrib.auth.signals import user_logged_in, user_login_failed

            from dbops.logins import record_failure, reset_failures

            user_login_failed.connect(record_failure, dispatch_uid="dbops.login_failures")
            user_logged_in.connect(reset_failures, dispatch_uid="dbops.login_reset")
        checks.register(dbops_checks.check_psycopg_implementation)
        checks.register(dbops_checks.check_engine_outside_strict_environments)
        checks.register(dbops_checks.check_pool_covers_threads)
        checks.register(dbops_checks.check_pool_timeout_above_connect_timeout)
        checks.register(dbops_checks.check_pool_fits_server, checks.Tags.database)
        checks.register(dbops_checks.check_pool_fits_server_on_deploy, deploy=True)
        checks.register(dbops_checks.check_probes_not_redirected, checks.Tags.security, deploy=True)
        checks.register(dbops_checks.check_backups_signed, checks.Tags.security, deploy=True)
        checks.register(dbops_checks.check_pgbouncer_compatibility)
        checks.register(dbops_checks.check_statement_timeout_behind_pgbouncer, checks.Tags.database)
        checks.register(dbops_checks.check_metrics_access, checks.Tags.security)
        checks.register(dbops_checks.check_database_tls, checks.Tags.security)
        checks.register(dbops_checks.check_shared_cache, checks.Tags.caches)

        from django.db.backends.signals import connection_created

        if config.breaker.enabled:
            from django.core.signals import got_request_exception

            from dbops.breaker.middleware import mark_database_failure

            got_request_exception.connect(mark_database_failure, dispatch_uid="dbops.breaker_failure")

            from dbops.breaker.deadline import attach_statement_deadline

            connection_created.connect(attach_statement_deadline, dispatch_uid="dbops.statement_deadline")

        if config.replica is not None:
            from dbops.replication.router import attach_write_marker

            connection_created.connect(attach_write_marker, dispatch_uid="dbops.replica_write_marker")

        if config.query_monitoring:
            from dbops.monitoring.queries import attach_query_timer

            connection_created.connect(attach_query_timer, dispatch_uid="dbops.query_timer")

        from dbops import signals
        from dbops.alerting import lifecycle as alerts

        signals.breaker_transition.connect(alerts.on_breaker_transition, dispatch_uid="dbops.alert_breaker")
        signals.backup_finished.connect(alerts.on_backup_finished, dispatch_uid="dbops.alert_backup")
        signals.migration_run_finished.connect(alerts.on_migration_run_finished, dispatch_uid="dbops.alert_migration")
