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

from celery import Celery, Task, signals
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
        self.enabled = True  # off in the worker and beat processes: they may wait for the broker

    def is_open(self) -> bool:
        return self.enabled and time.monotonic() < self.open_until

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
        if publish_circuit.enabled:
            options.setdefault("retry", False)  # one bounded try: the sweeps are the retry
        try:
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, **options)
        except EncodeError:
            raise  # a programming error, not the broker's
        except Exception:
            if not publish_circuit.enabled:
                raise
            seconds = settings.PUBLISH_CIRCUIT_OPEN_SECONDS
            publish_circuit.trip(seconds)
            logger.warning("broker publish of %s failed; no publish tried for %s s", self.name, seconds)
            raise


def _restore_unacked_on_a_closed_connection_leaves_them_in_redis() -> None:
    """kombu 5.7's Redis transport crashes the worker ("Unrecoverable error: AttributeError:
    'NoneType' object has no attribute 'hostname'") when a broker restart finds it holding
    unacknowledged messages: closing the lost connection tries to put them back in the queue
    through a transport whose connection details are already gone. Here that step leaves them
    where they are — Redis keeps every unacknowledged message in its unacked hash, and a worker
    puts it back in the queue after the visibility timeout — and the worker reconnects.
    Reproduced by tests/test_worker_outlives_broker.py (without this: the worker exits)."""
    from kombu.transport import redis as kombu_redis

    restore_unacked = kombu_redis.QoS.restore_unacked
    if getattr(restore_unacked, "leaves_them_in_redis", False):
        return

    def restore_unacked_or_leave(self, client=None):
        if client is None and self.channel.connection.client is None:
            logger.warning(
                "connection to the broker lost holding %s unacknowledged message(s): left in the broker's "
                "unacked set, handed out again after the visibility timeout",
                len(self._delivered),
            )
            self._delivered.clear()
            return None
        return restore_unacked(self, client)

    restore_unacked_or_leave.leaves_them_in_redis = True
    kombu_redis.QoS.restore_unacked = restore_unacked_or_leave


_restore_unacked_on_a_closed_connection_leaves_them_in_redis()

app = Celery("homevisit", task_cls=CircuitTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _no_circuit_outside_requests(**kwargs) -> None:
    """Beat and the worker publish on their own time: a sweep waits for the broker to come back
    rather than being skipped for the circuit's period after it did."""
    publish_circuit.enabled = False


@signals.beat_init.connect
def _beat_stamps_its_heartbeat(**kwargs) -> None:
    """Beat stamps its own heartbeat as it sends the heartbeat task (monitoring.tasks): the health
    page tells a silent beat from a silent worker."""
    signals.before_task_publish.connect(_stamp_beat, weak=False)


def _stamp_beat(sender: str | None = None, **kwargs) -> None:
    from django.db import close_old_connections

    from monitoring.models import Heartbeat
    from monitoring.services import heartbeat_stamp
    from monitoring.tasks import HEARTBEAT_TASK

    if sender != HEARTBEAT_TASK:
        return
    try:
        close_old_connections()  # beat runs for months: a connection the database dropped is replaced
        heartbeat_stamp(name=Heartbeat.Name.BEAT)
    except Exception:  # a database that is down must not stop beat from sending
        logger.warning("beat heartbeat not stamped", exc_info=True)
