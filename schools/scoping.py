"""The one gate between a request and a scoped object.

Every view fetches objects with ``get_object_for_user`` or lists them with a model's
``visible_to(user)`` queryset. Outside the user's scope the answer is 404, never 403, so that no one
can learn that another school's record exists, and the attempt is written to the audit log.
"""

import logging
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404, HttpRequest

from schools.models import AuditEvent
from schools.services import audit_event_record

logger = logging.getLogger("homevisit.access")


def get_object_for_user(model_or_queryset, request: HttpRequest, **lookup) -> models.Model:
    """Return the object matching ``lookup`` among those visible to ``request.user``, or raise 404."""
    queryset = model_or_queryset
    if isinstance(model_or_queryset, type) and issubclass(model_or_queryset, models.Model):
        queryset = model_or_queryset.objects.all()
    try:
        return queryset.visible_to(request.user).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
        # A malformed id (e.g. not a UUID in ?student=) is refused like a missing one, not a 500.
        deny(request, object_type=queryset.model._meta.label, object_id=_lookup_text(lookup))
        raise Http404 from None


def deny(request: HttpRequest, *, object_type: str, object_id: str) -> None:
    """Log an attempt to reach something outside the user's scope."""
    logger.warning("denied %s %s=%s to %s", request.path, object_type, object_id, request.user)
    audit_event_record(
        action=AuditEvent.Action.DENIED,
        request=request,
        object_type=object_type,
        object_id=object_id,
    )


def _lookup_text(lookup: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in lookup.items())[:64]


def require_roles(*roles: str):
    """Let only these roles reach a view; anyone else gets the same 404 as for a missing page."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.user.role not in roles:
                deny(request, object_type="view", object_id=request.resolver_match.view_name)
                raise Http404
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
