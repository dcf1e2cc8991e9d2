"""Reads of the health of the figures (issue 15: freshness as a measured promise)."""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from schools.models import School, SchoolClass


@dataclass(frozen=True)
class FiguresBehind:
    """Schools of a unit whose figures are older than their last change by more than
    STATISTICS_FRESHNESS: how many, and how long the oldest has waited (whole minutes)."""

    schools: int
    oldest_minutes: int


def figures_behind(*, level: str, unit_id: int) -> FiguresBehind | None:
    """For a dashboard's unit (a ledgers.models.Level value and its id; the county's id is ignored):
    None when every school's figures are within the promise. One query."""
    now = timezone.now()
    schools = School.objects.filter(statistics_stale_since__lt=now - settings.STATISTICS_FRESHNESS)
    if level == "zone":
        schools = schools.filter(zone_id=unit_id)
    elif level == "school":
        schools = schools.filter(pk=unit_id)
    elif level == "class":
        schools = schools.filter(pk__in=SchoolClass.objects.filter(pk=unit_id).values("school_id"))
    found = schools.aggregate(schools=Count("pk"), oldest=Min("statistics_stale_since"))
    if not found["schools"]:
        return None
    waited: datetime.timedelta = now - found["oldest"]
    return FiguresBehind(schools=found["schools"], oldest_minutes=int(waited.total_seconds() // 60))
