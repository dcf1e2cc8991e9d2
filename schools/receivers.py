"""Authentication events written to the audit log (Django only reports them through signals)."""

from schools.models import AuditEvent
from schools.services import audit_event_record


def record_login(sender, request, user, **kwargs) -> None:
    audit_event_record(action=AuditEvent.Action.LOGIN, request=request, user=user)


def record_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_event_record(action=AuditEvent.Action.LOGOUT, request=request, user=user)


def record_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # The attempted username says whose account is under attack; the password is never kept.
    audit_event_record(
        action=AuditEvent.Action.LOGIN_FAILED, request=request, username=str(credentials.get("username", ""))
    )
