"""Celery tasks of the statistics engine. Each takes ids, not objects, and is safe to run twice."""

import contextlib
import zlib
from collections.abc import Iterator

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, connection

from ledgers.models import StatisticsRun
from ledgers.statistics import statistics_recompute_all, statistics_refresh_stale

# pg_try_advisory_lock key of the sweep (a constant of this module; other locks use other keys).
_SWEEP_LOCK = zlib.crc32(b"homevisit.ledgers.statistics_refresh_stale_sweep")


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def statistics_refresh_school(school_id: int) -> list[int]:
    """Refresh the school if it is still marked stale and its coalescing window has passed (the
    embedded default, whose window is zero, queues it in-process after each change)."""
    return statistics_refresh_stale(school_ids=[school_id], older_than=settings.STATISTICS_REFRESH_DELAY)


# Not acknowledged late: a sweep lost with its worker is replaced by the next one a few seconds
# later (the stale marks are rows), and an early ack leaves nothing for a broker restart to restore.
@shared_task(acks_late=False)
def statistics_refresh_stale_sweep() -> list[int]:
    """Beat job (every ``STATISTICS_SWEEP_INTERVAL``): refresh every school whose stale mark is older
    than the coalescing window ``STATISTICS_REFRESH_DELAY`` (or whose figures are older than
    ``STATISTICS_MAX_STALENESS``). This is how every change reaches the figures: after a change,
    within the window plus one interval plus the compute time. One sweep at a time: a sweep that
    finds another running returns [] and leaves the marks to it and the next one."""
    with _only_sweep() as alone:
        if not alone:
            return []
        return statistics_refresh_stale(older_than=settings.STATISTICS_REFRESH_DELAY)


@contextlib.contextmanager
def _only_sweep() -> Iterator[bool]:
    """A session advisory lock on PostgreSQL: released by the database if the worker dies. SQLite
    (the embedded default, tasks in-process) has one writer anyway."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_SWEEP_LOCK])
        alone = cursor.fetchone()[0]
    try:
        yield alone
    finally:
        if alone:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_SWEEP_LOCK])


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
