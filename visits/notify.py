"""The one notifier: every message the system sends to people goes through ``notify``.

It always writes in-app ``Notification`` rows (inside the caller's transaction, so a rolled-back
change notifies no one). When ``settings.NOTIFY_WEBHOOK_URL`` is set it also posts the message to a
WeCom-style group robot, from a Celery task queued after the commit: the robot is slow and
sometimes down, and neither must hold up or undo the change that raised the message. The message
waits in an outbox row until the robot takes it, so neither a broker nor a robot that is down
loses it.
"""

import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from schools.models import User
from visits.models import Notification, WebhookMessage

logger = logging.getLogger("homevisit.notify")

WEBHOOK_TIMEOUT_SECONDS = 10
# WeCom refuses text messages past 2048 bytes; Chinese characters take three.
WEBHOOK_CONTENT_MAX_CHARS = 600


class WebhookRejected(Exception):
    """The robot answered, but did not take the message (an HTTP error or a non-zero errcode)."""


def notify(*, users: Iterable[User], title: str, body: str, link: str = "") -> list[Notification]:
    """Tell ``users`` something: an in-app notification each, and one webhook message if configured."""
    recipients = list({user.pk: user for user in users}.values())
    notifications = Notification.objects.bulk_create(
        Notification(user=user, title=title[:100], body=body[:500], link=link[:200]) for user in recipients
    )
    if settings.NOTIFY_WEBHOOK_URL:
        from visits.tasks import notify_webhook_send

        # The message is a row in the caller's transaction: if the broker is down after the commit
        # (robust: no error page for a committed change), the outbox sweep sends it later.
        message = WebhookMessage.objects.create(content=webhook_content(title=title, body=body))
        transaction.on_commit(lambda: notify_webhook_send.delay(message.pk), robust=True)
    return notifications


def webhook_content(*, title: str, body: str) -> str:
    return f"【{title}】\n{body}"[:WEBHOOK_CONTENT_MAX_CHARS]


def webhook_post(*, url: str, content: str) -> None:
    """POST one text message to a WeCom group robot; raise on any failure so the task retries."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("NOTIFY_WEBHOOK_URL must be an http:// or https:// URL.")
    payload = json.dumps({"msgtype": "text", "text": {"content": content}}, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=payload, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    # HTTPError (4xx/5xx), URLError and timeouts are all OSError: the task retries on them.
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
        answer = response.read(4096)
    try:
        errcode = json.loads(answer).get("errcode", 0)
    except (ValueError, AttributeError):
        return  # a robot that answers 2xx without WeCom's JSON took the message
    if errcode:
        raise WebhookRejected(f"webhook answered errcode {errcode}: {answer[:200]!r}")
