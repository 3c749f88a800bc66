from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "portal.audit"
    label = "audit"
    verbose_name = "Audit trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery tasks get their own audit scope, so security events recorded inside a task's
        # transaction survive its rollback (see portal.audit.context).
        from portal.audit import signals

        signals.connect()
