"""The one notifier: every message the system sends to people goes through ``notify``.

It always writes in-app ``Notification`` rows (inside the caller's transaction, so a rolled-back
change notifies no one). When ``settings.NOTIFY_WEBHOOK_URL`` is set it also posts the message to a
WeCom-style group robot, from a Celery task queued after the commit: the robot is slow and
sometimes down, and neither must hold up or undo the change that raised the message. The message
waits in an outbox row until the robot takes it, so neither a broker nor a robot that is down
loses it.
"""

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from schools.models import User
from visits.models import GroupRobot, Notification, WebhookMessage

logger = logging.getLogger("homevisit.notify")

WEBHOOK_TIMEOUT_SECONDS = 10
# WeCom refuses text messages past 2048 bytes; Chinese characters take three.
WEBHOOK_CONTENT_MAX_CHARS = 600


class WebhookRejected(Exception):
    """The robot answered, but did not take the message (an HTTP error or a non-zero errcode)."""


def notify(*, users: Iterable[User], title: str, body: str, link: str = "", robot: bool = True) -> list[Notification]:
    """Tell ``users`` something: an in-app notification each, and one webhook message if configured.
    ``robot=False`` keeps the message in the app (a reminder whose group digest is sent separately,
    see ``robot_digest_queue``)."""
    recipients = list({user.pk: user for user in users}.values())
    notifications = Notification.objects.bulk_create(
        Notification(user=user, title=title[:100], body=body[:500], link=link[:200]) for user in recipients
    )
    if robot and settings.NOTIFY_WEBHOOK_URL:
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


# WeCom's text limit; DingTalk allows more, but one digest reads the same in both.
ROBOT_TEXT_MAX_BYTES = 2048


def robot_digest_queue(*, school_id: int, content: str) -> WebhookMessage | None:
    """Queue one digest for a school's group robot (the county-wide robot when the school has none),
    cut to ``ROBOT_TEXT_MAX_BYTES`` of UTF-8. It waits in the outbox until a robot takes it; None
    when neither the school nor the county has a robot."""
    if not settings.NOTIFY_WEBHOOK_URL and not GroupRobot.objects.filter(school_id=school_id, enabled=True).exists():
        return None
    from visits.tasks import notify_webhook_send

    message = WebhookMessage.objects.create(content=fit_bytes(content, ROBOT_TEXT_MAX_BYTES), school_id=school_id)
    transaction.on_commit(lambda: notify_webhook_send.delay(message.pk), robust=True)
    return message


def fit_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, at a line end where possible, marked 「……」."""
    if len(text.encode("utf-8")) <= limit:
        return text
    tail = "\n……（更多请登录系统查看）"
    room = limit - len(tail.encode("utf-8"))
    cut = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    if "\n" in cut:
        cut = cut[: cut.rindex("\n")]
    return cut + tail


def robot_target(message: WebhookMessage) -> tuple[GroupRobot | None, str, str, str] | None:
    """(robot or None for the county's, kind, url, secret) that takes the message, or None."""
    if message.school_id:
        robot = GroupRobot.objects.filter(school_id=message.school_id, enabled=True).first()
        if robot is not None:
            return robot, robot.kind, robot.url, robot.secret
    if settings.NOTIFY_WEBHOOK_URL:
        return None, GroupRobot.Kind.WECOM, settings.NOTIFY_WEBHOOK_URL, ""
    return None


def dingtalk_signed_url(url: str, secret: str, *, now_ms: int | None = None) -> str:
    """DingTalk's 加签: timestamp and HMAC-SHA256 of "timestamp\\nsecret", base64, URL-encoded."""
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp}&sign={sign}"


ACCOUNT_LOCKED_TITLE = "账号因多次登录失败被锁定"


def notify_account_locked(sender, request, username, ip_address, **kwargs) -> None:
    """django-axes' ``user_locked_out``: when an account is locked from every address (the
    per-account rule, issue 14), tell its school's admins and the bureau admins, once per lock
    (axes sends the signal again for every attempt refused during the lock)."""
    from schools.accounts import PER_ACCOUNT, locked_until, lockout_rule
    from schools.models import Role

    username = str(username or "")
    if lockout_rule(username, ip_address) != PER_ACCOUNT:
        return
    account = User.objects.filter(username=username).select_related("school").first()
    bureau = list(User.objects.filter(role=Role.BUREAU_ADMIN, is_active=True))
    school_admins = []
    if account is not None and account.school_id:
        school_admins = list(User.objects.filter(role=Role.SCHOOL_ADMIN, school_id=account.school_id, is_active=True))
    from schools.privacy import redact_contacts

    shown = redact_contacts(username)
    name = f"{account.display_name}（{shown}）" if account is not None else shown
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    if Notification.objects.filter(title=ACCOUNT_LOCKED_TITLE, body__startswith=name, created_at__gte=since).exists():
        return
    until = timezone.localtime(locked_until(username))
    body = (
        f"{name} 近 {int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)} 分钟内从多个网络地址登录失败 "
        f"{settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT} 次以上，已锁定至 {until:%H:%M}。如非本人操作，可能有人在猜测密码；"
        "教育局管理员可在「锁定账号」页面提前解锁。"
    )
    # In the app only: an account under attack is not news for a group robot.
    notify(users=bureau, title=ACCOUNT_LOCKED_TITLE, body=body, link=reverse("locked_accounts"), robot=False)
    if school_admins:
        notify(users=school_admins, title=ACCOUNT_LOCKED_TITLE, body=body, robot=False)
