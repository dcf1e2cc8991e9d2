"""Home-page cards of the special-student ledgers: the head teacher's 「今日每日一问」 (one tap per
child) and the school admin's summary (待建档, 入户不足2次, last school day's missed asks)."""

from django import template

from ledgers.care import care_log, care_today
from ledgers.support import support_counts, support_ledger
from schools.models import Role

register = template.Library()


@register.inclusion_tag("ledgers/_care_today.html", takes_context=True)
def care_today_card(context):
    """For a teacher: today's asks of the care children of the classes they head, and how many of
    their special students have no plan. Nothing for anyone else."""
    request = context["request"]
    user = request.user
    if user.role != Role.TEACHER or not user.school_id:
        return {"card": None, "support": None}
    mine = support_ledger(user.school, user=user)
    return {
        "card": care_today(user),
        "support": {
            "total": len(mine.rows),
            "no_plan": sum(1 for r in mine.rows if r.needs_plan),
            "below_two": sum(1 for r in mine.rows if r.below_two),
        },
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("ledgers/_ledgers_summary.html")
def ledgers_summary(school):
    """For the school admin's home page: the ledgers' open work with links to each list."""
    log = care_log(school)
    return {"school": school, "support": support_counts(school), "log": log, "missed": log.missed_last_day}
