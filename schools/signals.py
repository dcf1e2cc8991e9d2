"""Signals apps to the right listen to, so that an app never imports from one to its right."""

from django.dispatch import Signal

# Sent after the commit that made a school's statistics stale (a visit submitted or corrected, a
# roster or staff import). Argument: school_id. The statistics app queues a refresh.
statistics_refresh_wanted = Signal()
