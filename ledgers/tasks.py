"""Celery tasks of the statistics engine. Each takes ids, not objects, and is safe to run twice."""

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from ledgers.models import StatisticsRun
from ledgers.statistics import statistics_recompute_all, statistics_refresh_stale


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def statistics_refresh_school(school_id: int) -> list[int]:
    """Queued a short while after a change (the coalescing window): refresh the school if it is
    still marked stale and no newer request is waiting for its own turn."""
    return statistics_refresh_stale(school_ids=[school_id], older_than=settings.STATISTICS_REFRESH_DELAY)


@shared_task(acks_late=True)
def statistics_refresh_stale_sweep() -> list[int]:
    """Beat job (every minute): refresh every school marked stale for longer than the window —
    requests whose queued refresh was lost (a broker that was down) are answered here."""
    return statistics_refresh_stale(older_than=settings.STATISTICS_REFRESH_DELAY * 2)


@shared_task(bind=True, acks_late=True, max_retries=3)
def statistics_recompute_nightly(self) -> int | None:
    """Beat job (every night): recompute every unit; resumes a run that a killed worker left.

    When an unfinished run holds its lease this leaves it to its worker; but that worker may be the
    one that died (a pool process killed by the OOM killer hands its message straight back, while
    the lease is still fresh), so it comes back once the lease has run out and resumes the run if
    nobody made progress meanwhile."""
    run = statistics_recompute_all()
    if run is None and StatisticsRun.objects.filter(finished_at__isnull=True).exists():
        raise self.retry(countdown=settings.STATISTICS_RUN_LEASE.total_seconds() + 60)
    return run.pk if run else None


# The special-student ledgers' beat jobs live in their own module; imported so the worker registers them.
from ledgers import reminders  # noqa: E402, F401
