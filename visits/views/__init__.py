from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url


def saved_redirect(request: HttpRequest, to: str, *args, **kwargs) -> HttpResponse:
    """Where a saved form goes next. A plain form post gets the redirect; the forms' offline script
    (static bundle ``offline.js``, which posts with ``X-Requested-With: fetch``) gets 204 with the
    address in ``X-Record-Url`` and opens it itself, so the flash message waits for that page
    instead of being spent on a redirect that fetch would follow out of sight."""
    url = resolve_url(to, *args, **kwargs)
    if request.headers.get("X-Requested-With") == "fetch":
        response = HttpResponse(status=204)
        response["X-Record-Url"] = url
        return response
    return redirect(url)
