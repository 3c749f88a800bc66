from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    label = "reports"
    verbose_name = "Outcomes and progress reports"
    default_auto_field = "django.db.models.BigAutoField"
