"""Template context for every page."""

from django.http import HttpRequest

from visits.models import Notification


def unread_notifications(request: HttpRequest) -> dict[str, int]:
    """The navbar badge: how many notifications the user has not read. One COUNT on the
    (user, read_at) index; nothing for anonymous visitors."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"unread_notifications": 0}
    return {"unread_notifications": Notification.objects.filter(user=user, read_at__isnull=True).count()}
