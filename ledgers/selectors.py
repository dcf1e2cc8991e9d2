"""Reads of the stored statistics for dashboards and the statistics sheet. Nothing here touches the
visit table: every figure comes from ``UnitStatistics``, ``UnitStatisticsDay`` and
``TeacherStatistics`` rows that ``ledgers.statistics`` computed."""

import datetime
from dataclasses import dataclass

from django.db.models import Max, QuerySet
from django.utils import timezone

from ledgers.models import WHOLE_CAMPAIGN, Level, TeacherStatistics, UnitStatistics, UnitStatisticsDay
from schools.models import Campaign, Phase, User


@dataclass(frozen=True)
class Period:
    """The whole campaign (``code == WHOLE_CAMPAIGN``) or one phase (``code`` is its kind)."""

    code: str
    label: str
    start: datetime.date | None
    end: datetime.date | None
    phase: Phase | None = None

    @property
    def is_revisit(self) -> bool:
        return self.code == Phase.Kind.REVISIT


def campaign_periods(campaign: Campaign) -> list[Period]:
    """The whole campaign first, then each phase in date order."""
    phases = list(campaign.phases.order_by("start"))
    whole = Period(
        code=WHOLE_CAMPAIGN,
        label="全年（整个活动）",
        start=phases[0].start if phases else None,
        end=phases[-1].end if phases else None,
    )
    return [whole] + [
        Period(code=p.kind, label=p.get_kind_display(), start=p.start, end=p.end, phase=p) for p in phases
    ]


def period_of(campaign: Campaign, code: str | None) -> Period:
    """The period named by ``code``; the whole campaign when it names none of them."""
    periods = campaign_periods(campaign)
    return next((p for p in periods if p.code == code), periods[0])


def statistics_campaign(today: datetime.date | None = None) -> Campaign | None:
    return Campaign.current(today or timezone.localdate())


def unit_rows(
    user: User,
    *,
    campaign: Campaign,
    period: str,
    level: str,
    zone_id: int | None = None,
    school_id: int | None = None,
) -> QuerySet[UnitStatistics]:
    """The rows of one level in the user's scope, optionally those of one zone or school."""
    rows = UnitStatistics.objects.visible_to(user).filter(campaign=campaign, period=period, level=level)
    if zone_id is not None:
        rows = rows.filter(zone_id=zone_id)
    if school_id is not None:
        rows = rows.filter(school_id=school_id)
    return rows.order_by("sort_key", "name")


def county_row(user: User, *, campaign: Campaign, period: str) -> UnitStatistics | None:
    return unit_rows(user, campaign=campaign, period=period, level=Level.COUNTY).first()


def trend(*, campaign: Campaign, level: str, unit_id: int) -> list[UnitStatisticsDay]:
    """The unit's daily history over the campaign, oldest first (scope is the caller's: it has the
    unit's row from ``unit_rows``)."""
    return list(UnitStatisticsDay.objects.filter(campaign=campaign, level=level, unit_id=unit_id).order_by("day"))


def teacher_rows(user: User, *, campaign: Campaign, period: str, school_id: int) -> QuerySet[TeacherStatistics]:
    return (
        TeacherStatistics.objects.visible_to(user)
        .filter(campaign=campaign, period=period, school_id=school_id)
        .select_related("teacher")
        .order_by("teacher__real_name")
    )


def computed_at(*, campaign: Campaign) -> datetime.datetime | None:
    """When the county's row of the campaign was last computed (every full or school refresh
    rewrites it), or None before the first computation."""
    return UnitStatistics.objects.filter(campaign=campaign, level=Level.COUNTY).aggregate(at=Max("computed_at"))["at"]


# --- dashboards -------------------------------------------------------------------------------

# Phases in which visits are expected, so that a progress line means something; the planning,
# review and summary phases have no coverage target.
VISITING_PHASES = (Phase.Kind.FULL_ROUND, Phase.Kind.REVISIT)


def progress_period(periods: list[Period], selected: Period, today: datetime.date) -> Period | None:
    """The phase the dashboards measure progress against: the selected phase when it is a visiting
    phase, else (whole campaign selected) the visiting phase that contains today, else None."""
    if selected.phase is not None:
        return selected if selected.code in VISITING_PHASES else None
    return next(
        (p for p in periods if p.code in VISITING_PHASES and p.start and p.end and p.start <= today <= p.end),
        None,
    )


def expected_coverage(*, target: int, start: datetime.date, end: datetime.date, today: datetime.date):
    """The coverage (percent, one decimal) a unit should have reached by the end of ``today``: a
    straight line from 0 at the phase's start to ``target`` at the end of its last day. 0 before
    the phase, ``target`` after it."""
    from decimal import ROUND_HALF_UP, Decimal

    total_days = (end - start).days + 1
    elapsed_days = min(max((today - start).days + 1, 0), total_days)
    return (Decimal(target) * elapsed_days / total_days).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def assigned_school_ids(user: User) -> set[int]:
    """The ids of an inspector's assigned schools (包联学校); empty for every other role."""
    from schools.models import InspectorAssignment, Role

    if user.role != Role.INSPECTOR:
        return set()
    return set(InspectorAssignment.objects.filter(inspector=user).values_list("school_id", flat=True))
