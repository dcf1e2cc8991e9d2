"""Authentication events written to the audit log (Django only reports them through signals), and
the session and lockout hooks of ``schools.accounts``."""

from django.conf import settings

from schools.accounts import PER_ACCOUNT, PER_ADDRESS, lockout_rule, session_clock_start, user_sessions_end
from schools.models import AuditEvent, User
from schools.services import audit_event_record


def record_login(sender, request, user, **kwargs) -> None:
    audit_event_record(action=AuditEvent.Action.LOGIN, request=request, user=user)


def record_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        # Set by SessionTimeoutMiddleware when the session ran out rather than the user leaving.
        reason = getattr(request, "session_end_reason", None)
        detail = {"reason": reason} if reason else None
        audit_event_record(action=AuditEvent.Action.LOGOUT, request=request, user=user, detail=detail)


def record_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # The attempted username says whose account is under attack; the password is never kept.
    audit_event_record(
        action=AuditEvent.Action.LOGIN_FAILED, request=request, username=str(credentials.get("username", ""))
    )


def start_session_clock(sender, request, user, **kwargs) -> None:
    session_clock_start(request)


def record_lockout(sender, request, username, ip_address, **kwargs) -> None:
    """django-axes locked (username, address) out, or refused an attempt while it is locked.

    AuditEvent has no lockout action (adding one would need a migration); the row is a
    LOGIN_FAILED marked ``{"lockout": true}`` with the rule reached (``address`` or ``account``),
    beside the plain LOGIN_FAILED of the same attempt."""
    rule = lockout_rule(str(username or ""), ip_address) or PER_ACCOUNT
    audit_event_record(
        action=AuditEvent.Action.LOGIN_FAILED,
        request=request,
        username=str(username or ""),
        detail={
            "lockout": True,
            "rule": rule,
            "failure_limit": settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
            if rule == PER_ADDRESS
            else settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT,
            "locked_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
    )


def end_sessions_of_disabled_user(
    sender, instance: User, created: bool, raw: bool, update_fields=None, **kwargs
) -> None:
    """A disabled account is signed out everywhere at once, wherever it was disabled (admin or code)."""
    if created or raw or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    user_sessions_end(user=instance)
