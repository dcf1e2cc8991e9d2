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
from django.db.models import Max
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


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The login page again, saying that this account is locked from this address and until when.

    Called by django-axes (``AXES_LOCKOUT_CALLABLE``) for the failure that reaches the limit and for
    every attempt while the lock lasts, whatever the password. 429 Too Many Requests."""
    username = get_client_username(request, credentials) or ""
    last_failure = AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    locked_until = (last_failure or timezone.now()) + settings.AXES_COOLOFF_TIME
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "locked_out": True,
        "lockout_minutes": lockout_minutes(),
        "locked_until": locked_until,
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
