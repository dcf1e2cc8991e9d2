from django.db import models


class Heartbeat(models.Model):
    """When a background process last showed it works: ``beat`` when beat sent its heartbeat task,
    ``worker`` when a worker ran it (monitoring.tasks). One row per name, updated in place."""

    class Name(models.TextChoices):
        BEAT = "beat", "beat"
        WORKER = "worker", "worker"

    name = models.CharField(max_length=20, choices=Name.choices, unique=True)
    at = models.DateTimeField()

    class Meta:
        verbose_name = "心跳"
        verbose_name_plural = "心跳"

    def __str__(self) -> str:
        return f"{self.name} {self.at:%Y-%m-%d %H:%M:%S}"
