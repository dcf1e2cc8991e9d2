"""Oversight panels that other apps' pages include (the record, the teacher's home, the dashboards)
without importing this app: ``{% load oversight_tags %}``. Each tag takes a fixed number of queries."""

from django import template
from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from oversight.flags import visit_flags
from oversight.models import BackCheck, ExcellentCase, Inspection, ReviewStep
from oversight.selectors import school_oversight, school_oversight_top
from oversight.services import can_review, review_mode
from schools.models import Role, School
from visits.models import Visit

register = template.Library()


@register.inclusion_tag("oversight/_visit_panel.html")
def visit_oversight(visit: Visit, user) -> dict:
    """On a record: its review steps and the review form, back-check outcomes, quality flags."""
    steps = list(ReviewStep.objects.filter(visit=visit).select_related("reviewer"))
    checks = list(BackCheck.objects.filter(visit=visit).exclude(outcome="").select_related("checked_by"))
    county_or_admin = user.role != Role.TEACHER
    mode = review_mode(visit.school)
    accepted = any(
        s.action == ReviewStep.Action.ACCEPTED and visit.submitted_at and s.at >= visit.submitted_at for s in steps
    )
    return {
        "visit": visit,
        "steps": steps,
        "checks": checks,
        "untrue": any(c.outcome == BackCheck.Outcome.UNTRUE for c in checks),
        "flags": visit_flags(visit) if county_or_admin else [],
        "can_review": visit.is_submitted and not accepted and can_review(user, visit, mode=mode),
        "accepted": accepted,
        "reviews": mode != "off",
        "case": ExcellentCase.objects.filter(visit=visit).first(),
        "can_nominate": visit.is_submitted
        and visit.phase_id is not None
        and user.role == Role.SCHOOL_ADMIN
        and user.school_id == visit.school_id,
        "can_nominate_admin": user.role != Role.TEACHER,
    }


@register.inclusion_tag("oversight/_returned.html")
def returned_visits(user) -> dict:
    """A teacher's records sent back by the review, shown first on their home page."""
    visits = []
    if user.is_authenticated and user.role == Role.TEACHER:
        visits = list(
            Visit.objects.filter(lead_teacher=user, status=Visit.Status.RETURNED)
            .prefetch_related("students", "review_steps")
            .order_by("visited_at")[:20]
        )
        for visit in visits:
            returns = [s for s in visit.review_steps.all() if s.action == ReviewStep.Action.RETURNED]
            visit.return_reason = returns[-1].reason if returns else ""
    return {"visits": visits}


# How long a zone's or the county's oversight panel is reused: a dashboard under many viewers
# reads its six queries once a minute, not once a view (issue 9); the lists behind it are live.
OVERSIGHT_CACHE_SECONDS = 60


@register.inclusion_tag("oversight/_dashboard.html")
def dashboard_oversight(unit, user) -> dict:
    """Review counts, back-check 属实率 and overdue rectifications: for a school dashboard that school;
    for a zone or the county, per school of it (ten with the most overdue, returned and untrue first)."""
    level = getattr(unit, "level", "")
    schools = School.objects.visible_to(user)
    if level == "school":
        schools = schools.filter(pk=unit.unit_id)
    elif level == "zone":
        schools = schools.filter(zone_id=unit.unit_id)
    elif level != "county":
        return {"show": False}
    if level == "school":
        rows = list(school_oversight(schools).values())
        return _panel(level, rows, more=0, total_overdue=sum(f.overdue_rectifications for f in rows), unit=unit)
    # A zone or the county: the ten schools to look at first, chosen in the database, kept for
    # OVERSIGHT_CACHE_SECONDS per unit and viewer's reach (the school's own panel is always live).
    key = f"oversight-panel:{level}:{unit.unit_id}:{user.role}:{user.zone_id}:{timezone.localdate()}"
    rows, count, total_overdue = cache.get_or_set(
        key, lambda: school_oversight_top(schools, limit=10), OVERSIGHT_CACHE_SECONDS
    )
    return _panel(level, rows, more=max(0, count - len(rows)), total_overdue=total_overdue, unit=unit)


def _panel(level: str, rows: list, *, more: int, total_overdue: int, unit) -> dict:
    return {
        "show": True,
        "level": level,
        "rows": rows,
        "more": more,
        "total_overdue": total_overdue,
        "school_id": unit.unit_id if level == "school" else None,
        "today": timezone.localdate(),
        "overdue_statuses": Inspection.Status,
    }


@register.inclusion_tag("oversight/_teacher_assessment.html")
def teacher_oversight(school: School) -> dict:
    """Per teacher of the school, for the teacher assessment: cases chosen as excellent (优秀家访案例)
    and visits found untrue by back-checks (抽查回访与记录不符). Two grouped queries and one for the
    names, none on the visit table."""
    from oversight.selectors import untrue_by_teacher  # noqa: PLC0415
    from schools.models import User  # noqa: PLC0415

    untrue = untrue_by_teacher(school.pk)
    chosen = dict(
        ExcellentCase.objects.filter(school=school, status=ExcellentCase.Status.CHOSEN)
        .values("teacher_id")
        .annotate(n=Count("pk"))
        .values_list("teacher_id", "n")
    )
    people = set(untrue) | set(chosen)
    names = dict(User.objects.filter(pk__in=people).values_list("pk", "real_name")) if people else {}
    rows = [(names.get(pk, "—"), chosen.get(pk, 0), untrue.get(pk, 0)) for pk in people]
    return {"rows": sorted(rows, key=lambda r: (-r[1], r[2], r[0]))}
