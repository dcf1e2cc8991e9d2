from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from schools.accounts import session_end_message, session_end_reason, session_seen
from schools.services import audit_request_bind, audit_request_unbind


class ForcePasswordChangeMiddleware:
    """Accounts created by an import carry a one-time password: nothing else opens until it is changed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.must_change_password:
            allowed = {reverse("password_change"), reverse("logout")}
            if request.path not in allowed and not request.path.startswith("/static/"):
                return redirect("password_change")
        return self.get_response(request)


class SessionTimeoutMiddleware:
    """Ends a signed-in session after ``SESSION_IDLE_TIMEOUT`` without a request, or
    ``SESSION_ABSOLUTE_TIMEOUT`` after its login however active, and sends the user to the login
    page with a message saying why (the logout is audited with the reason).

    The idle limit is also the session's stored expiry (``SESSION_COOKIE_AGE``), moved on at most
    once a minute; this check makes it exact and independent of the session engine. A session
    whose account can no longer sign in (disabled or deleted) is flushed, so that re-enabling the
    account does not bring it back. Goes after the authentication and message middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            reason = session_end_reason(request)
            if reason is not None:
                request.session_end_reason = reason  # read by schools.receivers.record_logout
                logout(request)
                messages.warning(request, session_end_message(reason))
                if request.path in {reverse("login"), reverse("logout")}:
                    return redirect("login")
                return redirect_to_login(request.get_full_path())
            session_seen(request)
        elif SESSION_KEY in request.session:
            request.session.flush()
        return self.get_response(request)


class NoStoreForAuthenticatedMiddleware:
    """Every answer to a signed-in user may carry minors' personal data (DESIGN §8): no browser,
    proxy or shared computer may keep a copy. Static files, the same for everyone, stay cacheable."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(_static_prefix()):
            return response
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            response["Cache-Control"] = "no-store, private"
            response["Pragma"] = "no-cache"
        return response


def _static_prefix() -> str:
    return "/" + settings.STATIC_URL.lstrip("/")


class AuditRequestMiddleware:
    """Lets the audit rows that services write for the signed-in user carry the request's address
    and path (DESIGN §8: who, what, when and from where)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = audit_request_bind(request)
        try:
            return self.get_response(request)
        finally:
            audit_request_unbind(token)
