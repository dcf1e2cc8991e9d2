"""The feedback ledger's summary box for the school's home page (issue 11): open items and the
oldest one's age, read in one query. A template tag, so that the schools app's page shows it
without importing from the apps to its right."""

from django import template

from visits.feedback import feedback_summary
from visits.models import Suggestion

register = template.Library()


@register.inclusion_tag("ledgers/_feedback_box.html", takes_context=True)
def feedback_box(context, school) -> dict:
    user = context["request"].user
    items = Suggestion.objects.visible_to(user).filter(school=school)
    return {"summary": feedback_summary(items), "school": school, "user": user}
