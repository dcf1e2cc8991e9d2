"""Keep a school's review counts current when its visits change (a record submitted, corrected or
resubmitted asks for the school's statistics refresh; the counts follow the same request)."""

import logging

from django.dispatch import receiver

from schools.signals import statistics_refresh_wanted

logger = logging.getLogger("homevisit.oversight")


@receiver(statistics_refresh_wanted)
def review_counts_follow(sender, *, school_id: int, **kwargs) -> None:
    from oversight.services import review_counts_refresh  # noqa: PLC0415 - apps are loaded by now

    try:
        review_counts_refresh(school_id=school_id)
    except Exception:  # a failed recount must not fail the request that changed a visit
        logger.warning("review counts of school %s not refreshed", school_id, exc_info=True)
