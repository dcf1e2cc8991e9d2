"""The health endpoint (django-health-check; README 「Production deployment」).

- ``/health/`` for the load balancer: the database only — a web process that reaches PostgreSQL
  serves teachers, whatever the broker or the worker do (submissions never wait on them) — as a
  status code: 200 healthy, 500 not. Anyone may ask; it says nothing but the check's name.
- ``/health/detail/`` for the operator: the database, Redis (when a broker is configured), the
  worker's and beat's heartbeats and the age of the figures; 500 when any fails. The bureau admin
  only (DESIGN §2: the bureau runs the system); anyone else gets the 404 of a missing page, logged.
  It names services, counts and ages, never a person or a record. From a shell on a host:
  ``manage.py health_check health_detail --no-http`` (exit status 0 or 1).
"""

import dataclasses
import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from health_check.checks import Database
from health_check.contrib.redis import Redis
from health_check.views import HealthCheckView
from redis.asyncio import Redis as RedisClient

from monitoring.checks import FiguresAge, HeartbeatCheck
from monitoring.models import Heartbeat
from schools.models import Role
from schools.scoping import deny


class LoadBalancerHealth(HealthCheckView):
    checks = (Database,)

    async def get(self, request, *args, **kwargs):
        request.GET = request.GET.copy()
        request.GET["format"] = "text"
        return await super().get(request, *args, **kwargs)


@dataclasses.dataclass
class Broker(Redis):
    """The Celery broker's Redis, pinged with a two-second budget."""

    timeout: datetime.timedelta = dataclasses.field(default=datetime.timedelta(seconds=2), repr=False)


def _broker_client() -> RedisClient:
    return RedisClient.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)


class OperatorHealth(HealthCheckView):
    template_name = "monitoring/health_detail.html"

    def get_checks(self):
        yield Database()
        if settings.CELERY_BROKER_URL:  # the embedded default runs tasks in-process: no broker, worker or beat
            yield Broker(client_factory=_broker_client)
            yield HeartbeatCheck(name=Heartbeat.Name.WORKER.value)
            yield HeartbeatCheck(name=Heartbeat.Name.BEAT.value)
        yield FiguresAge()

    async def dispatch(self, request, *args, **kwargs):
        user = await request.auser()
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if user.role != Role.BUREAU_ADMIN:
            await sync_to_async(deny)(request, object_type="view", object_id="health_detail")
            raise Http404
        return await super().dispatch(request, *args, **kwargs)
