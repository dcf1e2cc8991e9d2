"""Answer a school's request for a statistics refresh (schools.services.statistics_refresh_request).

The request is the stale mark on the school, written in the change's own transaction; no message
is published per change (issue 15). With a broker, beat's sweep (every
``STATISTICS_SWEEP_INTERVAL``) refreshes every school whose mark is older than the coalescing
window ``STATISTICS_REFRESH_DELAY``: changes within the window are coalesced into one refresh, and
no message waits in a worker, unacknowledged, for the window to pass — so a broker restart finds
nothing to restore, and a broker that is down or hung costs a request nothing. The embedded
default (tasks in-process, no beat) refreshes at once."""

import logging

from django.dispatch import receiver

from homevisit.celery import app
from schools.signals import statistics_refresh_wanted

logger = logging.getLogger("homevisit.statistics")


@receiver(statistics_refresh_wanted)
def statistics_refresh_queue(sender, *, school_id: int, **kwargs) -> None:
    """In-process tasks: refresh the school now. A failure loses nothing: the mark stays for the
    next refresh or sweep."""
    if not app.conf.task_always_eager:
        return  # the sweep does it
    from ledgers.tasks import statistics_refresh_school

    try:
        statistics_refresh_school.delay(school_id)
    except Exception:
        logger.warning("statistics refresh of school %s failed; the sweep will do it", school_id, exc_info=True)
