from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """The health endpoint (django-health-check) and the heartbeats it reads (issue 15, issue 9)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"
    verbose_name = "运行状态"
