"""Stamping heartbeats (monitoring.models.Heartbeat)."""

import datetime

from django.utils import timezone

from monitoring.models import Heartbeat


def heartbeat_stamp(*, name: str, at: datetime.datetime | None = None) -> None:
    """Record that ``name`` (a Heartbeat.Name) was alive at ``at`` (now by default). Upsert: one row
    per name, safe from any number of processes."""
    Heartbeat.objects.update_or_create(name=name, defaults={"at": at or timezone.now()})
