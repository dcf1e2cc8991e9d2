"""The heartbeat: beat sends it every HEALTH_HEARTBEAT_INTERVAL and stamps ``beat`` as it does
(homevisit.celery); the worker that runs it stamps ``worker``. The health page reports either
stamp older than HEALTH_SILENCE_LIMIT (a minute)."""

from celery import shared_task

from monitoring.models import Heartbeat
from monitoring.services import heartbeat_stamp

HEARTBEAT_TASK = "monitoring.tasks.health_heartbeat"


# Acknowledged on receipt: a lost heartbeat is replaced by the next.
@shared_task(name=HEARTBEAT_TASK, acks_late=False, ignore_result=True)
def health_heartbeat() -> None:
    heartbeat_stamp(name=Heartbeat.Name.WORKER)
