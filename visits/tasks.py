import datetime

from celery import shared_task
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from visits.models import WebhookMessage
from visits.notify import WebhookRejected, webhook_post


@shared_task(acks_late=True)
def safety_reports_overdue_sweep() -> int:
    """Beat job (every 5 minutes): mark overdue safety reports and alert their schools. Two runs at
    once are safe: reports are claimed with SKIP LOCKED."""
    from visits.safety import safety_reports_mark_overdue

    return safety_reports_mark_overdue()


@shared_task(
    acks_late=True,
    autoretry_for=(OSError, WebhookRejected),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def notify_webhook_send(message_id: int) -> None:
    """Post one outbox message to the group robot and mark it sent. The URL is read here, not passed
    in: it carries the robot's key and stays out of the broker. Retries with exponential backoff
    over several minutes; after that the outbox sweep tries again."""
    message = WebhookMessage.objects.filter(pk=message_id, sent_at__isnull=True).first()
    if message is None or not settings.NOTIFY_WEBHOOK_URL:
        return
    WebhookMessage.objects.filter(pk=message_id).update(attempts=F("attempts") + 1)
    try:
        webhook_post(url=settings.NOTIFY_WEBHOOK_URL, content=message.content)
    except (OSError, WebhookRejected) as exc:
        WebhookMessage.objects.filter(pk=message_id).update(last_error=str(exc)[:300])
        raise
    WebhookMessage.objects.filter(pk=message_id, sent_at__isnull=True).update(sent_at=timezone.now())


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
            sent_at__isnull=True, created_at__lt=now - OUTBOX_RETRY_AFTER, created_at__gt=now - OUTBOX_GIVE_UP_AFTER
        ).values_list("pk", flat=True)[:200]
    )
    for message_id in waiting:
        notify_webhook_send.delay(message_id)
    return waiting
