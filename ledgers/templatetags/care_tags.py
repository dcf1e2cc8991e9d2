"""Home-page cards of the special-student ledgers: the head teacher's 「今日每日一问」 (one tap per
child) and the school admin's summary (待建档, 入户不足2次, last school day's missed asks)."""

from django import template
from django.utils import timezone

from ledgers.care import care_log, care_students_visible_to, care_today
from ledgers.care_models import SupportPlan
from ledgers.support import can_edit_plan, special_students, support_counts, support_ledger, teacher_ledger_flags
from schools.models import Role

register = template.Library()


@register.inclusion_tag("ledgers/_care_today.html", takes_context=True)
def care_today_card(context):
    """For a teacher: today's asks of the care children of the classes they head, and how many of
    their special students have no plan. One query for a teacher with neither; nothing for others."""
    request = context["request"]
    user = request.user
    if user.role != Role.TEACHER or not user.school_id:
        return {"card": None, "support": None}
    has_special, has_care = teacher_ledger_flags(user)
    support = None
    if has_special:
        mine = support_ledger(user.school, user=user)
        support = {
            "total": len(mine.rows),
            "no_plan": sum(1 for r in mine.rows if r.needs_plan),
            "below_two": sum(1 for r in mine.rows if r.below_two),
        }
    return {
        "card": care_today(user) if has_care else None,
        "support": support,
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("ledgers/_ledgers_summary.html")
def ledgers_summary(school):
    """For the school admin's home page: the ledgers' open work with links to each list."""
    log = care_log(school)
    return {"school": school, "support": support_counts(school), "log": log, "missed": log.missed_last_day}


@register.inclusion_tag("ledgers/_student_ledger_links.html", takes_context=True)
def student_ledger_links(context, student):
    """On a student's page: the link to this year's support plan (or to write it, 待建档) and to the
    care log, for those whose scope holds them. Three queries at most."""
    user = context["request"].user
    plan = SupportPlan.objects.visible_to(user).filter(student=student).order_by("-school_year__start").first()
    special = special_students(student.school, today=timezone.localdate()).filter(pk=student.pk).exists()
    return {
        "student": student,
        "plan": plan,
        "may_create": special and plan is None and can_edit_plan(user, student),
        "care": care_students_visible_to(user).filter(pk=student.pk).exists(),
    }
