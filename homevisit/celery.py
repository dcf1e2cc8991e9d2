"""The Celery app, and the circuit every publish goes through (issue 15: a request never waits on
the broker).

A publish is bounded (one try, no retry loop; connect and each reply within the transport's
socket timeouts, settings ``# --- Faults ---``). When one fails, the circuit opens for
``PUBLISH_CIRCUIT_OPEN_SECONDS``: every publish in this process fails at once with
:class:`BrokerCircuitOpen` instead of waiting on a broker known to be down or hung; the first
publish after that tries again. Nothing the system needs is carried only by a message: a school's
refresh is a stale mark on the school, a robot message an outbox row, an import a job row, each
picked up by a beat sweep — so a publish that fails or is skipped loses nothing.
"""

import logging
import os
import threading
import time

from celery import Celery, Task
from kombu.exceptions import EncodeError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "homevisit.settings")

logger = logging.getLogger("homevisit.broker")


class BrokerCircuitOpen(ConnectionError):
    """A publish failed less than ``PUBLISH_CIRCUIT_OPEN_SECONDS`` ago: not tried this time."""


class PublishCircuit:
    """Shared by every thread of the process: ``open_until`` is a ``time.monotonic()`` instant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self, seconds: float) -> None:
        with self._lock:
            self.open_until = max(self.open_until, time.monotonic() + seconds)

    def close(self) -> None:
        with self._lock:
            self.open_until = 0.0


publish_circuit = PublishCircuit()


class CircuitTask(Task):
    """Every task of the project: ``delay`` and ``apply_async`` publish through the circuit."""

    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, link=None, link_error=None, **options):
        if self.app.conf.task_always_eager:
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, **options)
        from django.conf import settings

        if publish_circuit.is_open():
            raise BrokerCircuitOpen(f"broker publish of {self.name} skipped: a publish failed moments ago")
        options.setdefault("retry", False)  # one bounded try: the sweeps are the retry
        try:
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, **options)
        except EncodeError:
            raise  # a programming error, not the broker's
        except Exception:
            seconds = settings.PUBLISH_CIRCUIT_OPEN_SECONDS
            publish_circuit.trip(seconds)
            logger.warning("broker publish of %s failed; no publish tried for %s s", self.name, seconds)
            raise


app = Celery("homevisit", task_cls=CircuitTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
