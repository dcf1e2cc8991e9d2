from django import template

from students.models import CARE_CATEGORIES, SENSITIVE_CATEGORIES, SPECIAL_CATEGORIES, Category

register = template.Library()


@register.inclusion_tag("students/_category_badges.html")
def category_badges(student, sees_sensitive: bool = False):
    """The categories in force today as badges; sensitive ones only for those who work with the student."""
    badges = []
    for code in student.categories_on():
        if code in SENSITIVE_CATEGORIES and not sees_sensitive:
            continue
        if code in CARE_CATEGORIES:
            tone = "danger"
        elif code in SPECIAL_CATEGORIES:
            tone = "warning"
        else:
            tone = "info"
        badges.append((Category(code).label, tone))
    return {"badges": badges}
