"""Reads of oversight for pages and dashboards: counts per school in grouped queries (a fixed number
whatever the number of schools), never one query per school."""

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from oversight.models import BackCheck, Inspection, ReviewSetting

# A rectification still to be done or checked (整改中).
OPEN_INSPECTION_STATUSES = (Inspection.Status.OPEN, Inspection.Status.REPORTED, Inspection.Status.SENT_BACK)


@dataclass
class SchoolOversight:
    """One school's oversight figures. ``true_rate`` (属实率) = 属实 ÷ (属实 + 与记录不符), in percent
    with one decimal; families not reached (联系不上) are left out; ``None`` when nothing was
    checked (shown 「—」, DESIGN §7)."""

    school_id: int
    name: str = ""
    review_mode: str = ReviewSetting.Mode.OFF
    accepted: int = 0
    returned: int = 0
    awaiting: int = 0
    checks: dict = field(default_factory=lambda: dict.fromkeys(BackCheck.Outcome.values, 0))
    pending_checks: int = 0
    overdue_rectifications: int = 0
    open_rectifications: int = 0

    @property
    def reviews(self) -> bool:
        return self.review_mode != ReviewSetting.Mode.OFF

    @property
    def true_rate(self) -> Decimal | None:
        reached = self.checks[BackCheck.Outcome.TRUE] + self.checks[BackCheck.Outcome.UNTRUE]
        if not reached:
            return None
        rate = Decimal(100 * self.checks[BackCheck.Outcome.TRUE]) / reached
        return rate.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    @property
    def true_rate_text(self) -> str:
        return "—" if self.true_rate is None else f"{self.true_rate}%"

    @property
    def untrue(self) -> int:
        return self.checks[BackCheck.Outcome.UNTRUE]


def school_oversight(schools) -> dict[int, SchoolOversight]:
    """{school id: SchoolOversight} for a queryset of schools, in three queries over stored rows
    (no query reads the visit table, DESIGN §7): the schools with their setting and review counts,
    back-check outcomes grouped by school, open rectifications grouped by school."""
    result = {}
    rows = schools.values_list(
        "pk", "name", "review__mode", "review_count__accepted", "review_count__returned", "review_count__awaiting"
    )
    for pk, name, mode, accepted, returned, awaiting in rows:
        result[pk] = SchoolOversight(
            school_id=pk,
            name=name,
            review_mode=mode or ReviewSetting.Mode.OFF,
            accepted=accepted or 0,
            returned=returned or 0,
            awaiting=awaiting or 0,
        )
    school_ids = list(result)
    checks = (
        BackCheck.objects.filter(sample__school_id__in=school_ids)
        .values("sample__school_id", "outcome")
        .annotate(n=Count("pk"))
    )
    for row in checks:
        item = result[row["sample__school_id"]]
        if row["outcome"]:
            item.checks[row["outcome"]] += row["n"]
        else:
            item.pending_checks += row["n"]
    today = timezone.localdate()
    inspections = (
        Inspection.objects.filter(school_id__in=school_ids, status__in=OPEN_INSPECTION_STATUSES)
        .values("school_id")
        .annotate(n=Count("pk"), overdue=Count("pk", filter=Q(deadline__lt=today)))
    )
    for row in inspections:
        result[row["school_id"]].open_rectifications = row["n"]
        result[row["school_id"]].overdue_rectifications = row["overdue"]
    return result


def school_oversight_top(schools, *, limit: int = 10) -> tuple[list[SchoolOversight], int, int]:
    """The ``limit`` schools of ``schools`` (a queryset) with the most overdue rectifications, then
    returned records, then visits found untrue (name last), chosen and ordered in the database, so
    a city of 1,500 schools costs what a county does; with the number of schools and of overdue
    rectifications among all of them. Six queries whatever the number of schools.

    Shape: ([SchoolOversight, …] at most ``limit``, schools, overdue rectifications)."""
    today = timezone.localdate()
    open_inspections = Inspection.objects.filter(school=OuterRef("pk"), status__in=OPEN_INSPECTION_STATUSES)
    untrue = BackCheck.objects.filter(sample__school=OuterRef("pk"), outcome=BackCheck.Outcome.UNTRUE)

    def count_of(queryset, group: str) -> Coalesce:
        return Coalesce(Subquery(queryset.values(group).annotate(n=Count("pk")).values("n")[:1]), 0)

    top = list(
        schools.annotate(
            overdue=count_of(open_inspections.filter(deadline__lt=today), "school"),
            returned_records=Coalesce("review_count__returned", 0),
            untrue_checks=count_of(untrue, "sample__school"),
        )
        .order_by("-overdue", "-returned_records", "-untrue_checks", "name", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    figures = school_oversight(schools.model.objects.filter(pk__in=top))
    rows = sorted(figures.values(), key=lambda f: (-f.overdue_rectifications, -f.returned, -f.untrue, f.name))
    overdue = Inspection.objects.filter(
        school__in=schools.values("pk"), status__in=OPEN_INSPECTION_STATUSES, deadline__lt=today
    ).count()
    return rows, schools.count(), overdue


def untrue_by_teacher(school_id: int) -> dict[int, int]:
    """{lead teacher id: visits found untrue (与记录不符) by back-checks} for the teacher assessment."""
    rows = (
        BackCheck.objects.filter(sample__school_id=school_id, outcome=BackCheck.Outcome.UNTRUE)
        .values("lead_teacher_id")
        .annotate(n=Count("visit_id", distinct=True))
    )
    return {row["lead_teacher_id"]: row["n"] for row in rows}
