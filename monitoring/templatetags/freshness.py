"""{% figures_behind unit %}: one line on a dashboard when a school's figures are older than the
freshness promise (settings.STATISTICS_FRESHNESS, two minutes behind its last change)."""

from django import template

from monitoring.selectors import figures_behind

register = template.Library()


@register.inclusion_tag("monitoring/_figures_behind.html")
def figures_behind_note(unit) -> dict:
    """``unit``: a dashboard's Unit (``level``, ``unit_id``)."""
    return {"behind": figures_behind(level=unit.level, unit_id=unit.unit_id), "level": unit.level}
