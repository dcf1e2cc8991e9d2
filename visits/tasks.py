import datetime

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from visits.models import GroupRobot, WebhookMessage
from visits.notify import WebhookRejected, dingtalk_signed_url, robot_target, webhook_post


@shared_task(acks_late=True)
def safety_reports_overdue_sweep() -> int:
    """Beat job (every 5 minutes): mark overdue safety reports and alert their schools. Two runs at
    once are safe: reports are claimed with SKIP LOCKED."""
    from visits.safety import safety_reports_mark_overdue

    return safety_reports_mark_overdue()


# A robot takes about 20 messages a minute (WeCom and DingTalk both refuse more).
ROBOT_MESSAGES_PER_MINUTE = 20
# After this many failed posts a message is given up: it is not retried forever.
ATTEMPTS_MAX = 12


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OSError, WebhookRejected),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def notify_webhook_send(self, message_id: int) -> None:
    """Post one outbox message to its group robot (the school's own, else the county-wide one) and
    mark it sent. The URL is read here, not passed in: it carries the robot's key and stays out of the
    broker. Waits when the robot has taken its ~20 messages this minute; retries with exponential
    backoff over several minutes, after that the outbox sweep tries again, and after ``ATTEMPTS_MAX``
    posts the message is given up and the school's robot shown as failing."""
    message = WebhookMessage.objects.filter(pk=message_id, sent_at__isnull=True, given_up_at__isnull=True).first()
    if message is None:
        return
    target = robot_target(message)
    if target is None:
        return
    robot, kind, url, secret = target
    now = timezone.now()
    recent = WebhookMessage.objects.filter(sent_at__gte=now - datetime.timedelta(minutes=1))
    recent = recent.filter(school_id=robot.school_id) if robot else recent.filter(school__robot__isnull=True)
    if recent.count() >= ROBOT_MESSAGES_PER_MINUTE:
        if self.request.is_eager:
            return  # in-process: the message waits in the outbox for the sweep
        raise self.retry(countdown=60, max_retries=None)
    WebhookMessage.objects.filter(pk=message_id).update(attempts=F("attempts") + 1)
    if kind == GroupRobot.Kind.DINGTALK:
        url = dingtalk_signed_url(url, secret)
    try:
        webhook_post(url=url, content=message.content)
    except (OSError, WebhookRejected) as exc:
        error = str(exc)[:300]
        WebhookMessage.objects.filter(pk=message_id).update(last_error=error)
        if robot is not None:
            GroupRobot.objects.filter(pk=robot.pk, failing_since__isnull=True).update(failing_since=now)
            GroupRobot.objects.filter(pk=robot.pk).update(last_error=error)
        if message.attempts + 1 >= ATTEMPTS_MAX:
            WebhookMessage.objects.filter(pk=message_id).update(given_up_at=now)
            return
        raise
    WebhookMessage.objects.filter(pk=message_id, sent_at__isnull=True).update(sent_at=timezone.now())
    if robot is not None and robot.failing_since is not None:
        GroupRobot.objects.filter(pk=robot.pk).update(failing_since=None, last_error="")


OUTBOX_RETRY_AFTER = datetime.timedelta(minutes=15)
OUTBOX_GIVE_UP_AFTER = datetime.timedelta(days=1)


@shared_task(acks_late=True)
def notify_webhook_outbox_sweep() -> list[int]:
    """Beat job (every 5 minutes): queue again the robot messages not sent a quarter of an hour
    after they were written (their task was lost with the broker, or gave up while the robot was
    down); a message older than a day is left: its news is stale."""
    now = timezone.now()
    waiting = list(
        WebhookMessage.objects.filter(
            sent_at__isnull=True,
            given_up_at__isnull=True,
            created_at__lt=now - OUTBOX_RETRY_AFTER,
            created_at__gt=now - OUTBOX_GIVE_UP_AFTER,
        ).values_list("pk", flat=True)[:200]
    )
    for message_id in waiting:
        notify_webhook_send.delay(message_id)
    return waiting
