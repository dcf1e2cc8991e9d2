"""Health checks of the background work, for django-health-check (monitoring.views).

Each answers with counts and ages only — no names, no personal data. Queries run on the request's
own thread and connection (sync_to_async), as every other database read of a request does."""

import dataclasses
import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Min
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from monitoring.models import Heartbeat
from schools.models import School


def _age(at: datetime.datetime | None) -> float | None:
    return None if at is None else (timezone.now() - at).total_seconds()


@dataclasses.dataclass
class HeartbeatCheck(HealthCheck):
    """Unavailable when ``name``'s last heartbeat is older than HEALTH_SILENCE_LIMIT, or missing."""

    name: str = Heartbeat.Name.WORKER.value

    async def run(self) -> None:
        at = await sync_to_async(self._last)()
        age = _age(at)
        limit = settings.HEALTH_SILENCE_LIMIT.total_seconds()
        if age is None:
            raise ServiceUnavailable(f"{self.name}: no heartbeat yet")
        if age > limit:
            raise ServiceUnavailable(f"{self.name}: silent for {age:.0f} s (limit {limit:.0f} s)")

    def _last(self) -> datetime.datetime | None:
        return Heartbeat.objects.filter(name=self.name).values_list("at", flat=True).first()


@dataclasses.dataclass
class FiguresAge(HealthCheck):
    """A warning when a school's figures are behind its changes by more than STATISTICS_FRESHNESS
    (the stale mark older than that): the sweep is not keeping up, or not running."""

    async def run(self) -> None:
        behind, oldest = await sync_to_async(self._behind)()
        if behind:
            raise ServiceWarning(
                f"{behind} school(s) with figures older than their last change by more than "
                f"{settings.STATISTICS_FRESHNESS.total_seconds():.0f} s; oldest {_age(oldest):.0f} s"
            )

    def _behind(self) -> tuple[int, datetime.datetime | None]:
        cutoff = timezone.now() - settings.STATISTICS_FRESHNESS
        late = School.objects.filter(statistics_stale_since__lt=cutoff)
        result = late.aggregate(oldest=Min("statistics_stale_since"))
        return late.count(), result["oldest"]
