"""Queue a school's statistics refresh when another app says its figures changed."""

import logging

from django.conf import settings
from django.dispatch import receiver

from schools.signals import statistics_refresh_wanted

logger = logging.getLogger("homevisit.statistics")


@receiver(statistics_refresh_wanted)
def statistics_refresh_queue(sender, *, school_id: int, **kwargs) -> None:
    """Refresh after the coalescing window. A broker that refuses the message loses nothing: the
    school stays marked stale and the periodic sweep refreshes it."""
    from ledgers.tasks import statistics_refresh_school

    seconds = settings.STATISTICS_REFRESH_DELAY.total_seconds()
    try:
        statistics_refresh_school.apply_async((school_id,), countdown=seconds)
    except Exception:  # the broker is down or refused: the stale mark stays, the sweep will do it
        logger.warning("statistics refresh of school %s not queued; the sweep will do it", school_id, exc_info=True)
