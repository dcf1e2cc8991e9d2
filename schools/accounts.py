"""Account and session security (等保 2.0 "identity and session" controls): the login lockout page,
the session clock (idle and absolute limits), and ending a disabled account's sessions.

The settings live in one block of ``homevisit/settings.py``; the clock is kept by
``schools.middleware.SessionTimeoutMiddleware``; the signal wiring is in ``schools.apps``.
"""

import logging
from importlib import import_module

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from schools.models import User

logger = logging.getLogger("homevisit.accounts")

# Session keys of the clock, as POSIX timestamps (JSON-serialisable).
LOGIN_AT = "homevisit_login_at"
SEEN_AT = "homevisit_seen_at"

# Ending reasons, written to the audit log and mapped to what the user is told.
IDLE = "idle"
ABSOLUTE = "absolute"
SESSION_END_MESSAGES = {
    IDLE: "您已超过 {minutes} 分钟未操作，为保护学生信息，系统已自动退出。请重新登录；未提交的内容需要重新填写。",
    ABSOLUTE: "本次登录已满 {hours} 小时，为保护学生信息，系统已自动退出。请重新登录。",
}


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' gate, first in ``AUTHENTICATION_BACKENDS``: refuses a locked-out attempt before
    the real backend runs, and authenticates nobody itself.

    Axes raises when ``authenticate()`` is called without a request. Such a call (a script or a
    test checking a password) has no address to lock, so it goes on to the real backend instead;
    every login form (the site's and the admin's) passes its request and is counted."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs
    ):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


PER_ADDRESS = "address"
PER_ACCOUNT = "account"


def _recent_attempts(username: str):
    """Axes' rows for ``username`` that still count (last failure under the cool-off old)."""
    return AccessAttempt.objects.filter(
        username=username, attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME
    )


def lockout_rule(username: str, ip_address: str | None) -> str | None:
    """Which lockout rule ``username`` from ``ip_address`` has reached: ``PER_ADDRESS`` (five
    failures from that address), ``PER_ACCOUNT`` (twenty from all addresses), or None.
    Two queries; see the settings block "Login failures"."""
    rows = _recent_attempts(username)
    if ip_address is not None:
        pair = rows.filter(ip_address=ip_address).aggregate(n=Sum("failures_since_start"))["n"] or 0
        if pair >= settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS:
            return PER_ADDRESS
    total = rows.aggregate(n=Sum("failures_since_start"))["n"] or 0
    return PER_ACCOUNT if total >= settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT else None


def failure_limit(request: HttpRequest, credentials: dict | None) -> int:
    """``AXES_FAILURE_LIMIT``. With the lockout parameters [username + address, username], axes
    compares the larger of the two failure counts (the account's, across addresses) with one limit:
    this returns the per-address limit when the pair itself has reached it, else the per-account
    limit, so that each rule applies with its own figure."""
    username = get_client_username(request, credentials) or ""
    ip_address = getattr(request, "axes_ip_address", None)
    pair = _recent_attempts(username).filter(ip_address=ip_address).aggregate(n=Sum("failures_since_start"))["n"] or 0
    if pair >= settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS:
        return settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
    return settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT


def locked_until(username: str, ip_address: str | None = None):
    """When the lock of ``username`` (from ``ip_address``, or its account lock) ends: the last
    counted failure plus the cool-off."""
    rows = _recent_attempts(username)
    if ip_address is not None:
        rows = rows.filter(ip_address=ip_address)
    last = rows.aggregate(last=Max("attempt_time"))["last"]
    return (last or timezone.now()) + settings.AXES_COOLOFF_TIME


def locked_accounts() -> list[dict]:
    """Usernames locked now by either rule, for the bureau admin's page: username, the account if
    it exists, failures counted, addresses, the rule and when the lock ends; most failures first.
    Three queries whatever the number of rows."""
    recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME)
    per_pair = recent.values("username", "ip_address").annotate(n=Sum("failures_since_start"), last=Max("attempt_time"))
    accounts: dict[str, dict] = {}
    for row in per_pair:
        account = accounts.setdefault(
            row["username"], {"username": row["username"], "failures": 0, "addresses": 0, "rule": None, "last": None}
        )
        account["failures"] += row["n"]
        account["addresses"] += 1
        if row["n"] >= settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS:
            account["rule"] = account["rule"] or PER_ADDRESS
            account["last"] = max(filter(None, [account["last"], row["last"]]))
    for account in accounts.values():
        if account["failures"] >= settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT:
            account["rule"] = PER_ACCOUNT
    locked = [account for account in accounts.values() if account["rule"]]
    lasts = dict(
        recent.filter(username__in=[a["username"] for a in locked])
        .values("username")
        .annotate(last=Max("attempt_time"))
        .values_list("username", "last")
    )
    users = {user.username: user for user in User.objects.filter(username__in=lasts).select_related("school")}
    for account in locked:
        last = lasts[account["username"]] if account["rule"] == PER_ACCOUNT else account["last"]
        account["until"] = last + settings.AXES_COOLOFF_TIME
        account["user"] = users.get(account["username"])
        del account["last"]
    return sorted(locked, key=lambda a: (-a["failures"], a["username"]))


def account_unlock(*, username: str, acting_user: User, request: HttpRequest | None = None) -> int:
    """Remove every counted login failure of ``username`` (all addresses, both rules); returns how
    many of axes' rows went. Audited as a CHANGE of the account (``object_type`` ``axes.AccessAttempt``)."""
    from axes.utils import reset

    from schools.models import AuditEvent
    from schools.services import audit_event_record

    with transaction.atomic():
        removed = reset(username=username) if username else 0
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            request=request,
            user=acting_user,
            object_type="axes.AccessAttempt",
            object_id=username,
            detail={"unlock": True, "removed": removed},
        )
    return removed


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The login page again, saying that this account is locked — from this address, or from
    everywhere — and until when.

    Called by django-axes (``AXES_LOCKOUT_CALLABLE``) for the failure that reaches a limit and for
    every attempt while the lock lasts, whatever the password. 429 Too Many Requests."""
    username = get_client_username(request, credentials) or ""
    rule = lockout_rule(username, request.axes_ip_address) or PER_ACCOUNT
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "locked_out": True,
        "account_locked": rule == PER_ACCOUNT,
        "lockout_minutes": lockout_minutes(),
        "locked_until": locked_until(username, request.axes_ip_address if rule == PER_ADDRESS else None),
        "next": request.POST.get("next", "") or request.GET.get("next", ""),
    }
    return render(request, "registration/login.html", context, status=429)


def session_clock_start(request: HttpRequest) -> None:
    """Stamp a new login's session with its start (the 12-hour limit counts from here)."""
    now = timezone.now().timestamp()
    request.session[LOGIN_AT] = now
    request.session[SEEN_AT] = now


def session_end_reason(request: HttpRequest) -> str | None:
    """Why a signed-in request's session must end now (``IDLE`` or ``ABSOLUTE``), or None.

    A session without a login time predates the clock or was made by hand: it is ended, as one
    that cannot say how old it is."""
    session = request.session
    now = timezone.now().timestamp()
    login_at = session.get(LOGIN_AT)
    if login_at is None or now - login_at > settings.SESSION_ABSOLUTE_TIMEOUT.total_seconds():
        return ABSOLUTE
    seen_at = session.get(SEEN_AT, login_at)
    if now - seen_at > settings.SESSION_IDLE_TIMEOUT.total_seconds():
        return IDLE
    return None


def session_seen(request: HttpRequest) -> None:
    """Note activity. The session row is written (and its expiry moved on) at most once a
    ``SESSION_ACTIVITY_RESOLUTION``, not on every request as ``SESSION_SAVE_EVERY_REQUEST`` would."""
    now = timezone.now().timestamp()
    seen_at = request.session.get(SEEN_AT, 0)
    if now - seen_at >= settings.SESSION_ACTIVITY_RESOLUTION.total_seconds():
        request.session[SEEN_AT] = now


def session_end_message(reason: str) -> str:
    return SESSION_END_MESSAGES[reason].format(
        minutes=int(settings.SESSION_IDLE_TIMEOUT.total_seconds() // 60),
        hours=int(settings.SESSION_ABSOLUTE_TIMEOUT.total_seconds() // 3600),
    )


def user_sessions_end(*, user: User) -> int:
    """Delete every stored session of ``user``; returns how many.

    Sessions are not indexed by user, so this decodes the unexpired ones. With the 30-minute idle
    expiry those are only the sessions used in the last half hour (a few thousand in the county's
    busiest hour), and accounts are disabled a few times a term, so a scan is cheaper than keeping
    an index in step. For a session engine without rows (cache, signed cookies) nothing is
    deleted here; ``SessionTimeoutMiddleware`` flushes such a session at its next request."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    model = store_class.get_model_class()
    decoder = store_class()
    user_id = str(user.pk)
    rows = model.objects.filter(expire_date__gt=timezone.now()).values_list("session_key", "session_data")
    doomed = [key for key, data in rows.iterator() if str(decoder.decode(data).get(SESSION_KEY)) == user_id]
    for key in doomed:
        store_class(session_key=key).delete()  # also clears a cached_db engine's cache entry
    if doomed:
        logger.info("ended %d session(s) of disabled account %s", len(doomed), user.pk)
    return len(doomed)
