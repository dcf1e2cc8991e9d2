from celery import shared_task
from django.conf import settings

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
def notify_webhook_send(content: str) -> None:
    """Post one message to the group robot. The URL is read here, not passed in: it carries the
    robot's key and stays out of the broker. Retries with exponential backoff over several minutes."""
    if settings.NOTIFY_WEBHOOK_URL:
        webhook_post(url=settings.NOTIFY_WEBHOOK_URL, content=content)
