"""Benchmark: a teacher's submissions while the broker is frozen (accepts connections, never
answers — a hung Redis), against the same submissions with the broker answering (issue 15).

Runs in a throw-away test database on whatever DATABASE_URL points at, with the broker at
CELERY_BROKER_URL (required: the point is publishing):

    .venv/bin/python bench/frozen_broker.py [--requests 40]

Two submissions, each through its real view (Django's test client, in-process, one after another):
a visit record (「提交」), which publishes nothing since the refresh is a stale mark for beat's
sweep; and a safety check-in (「平安返回」) of an overdue report, which publishes one robot message after its commit
(NOTIFY_WEBHOOK_URL set). Each under: the broker answering; frozen with the publish circuit
(homevisit.celery); frozen with the circuit held shut (PUBLISH_CIRCUIT_OPEN_SECONDS = 0: every
publish tries the broker, as before issue 15). Prints p50/p95/max per case, and checks that every
submission was stored. Target: frozen p95 within 2x of the answering broker's.
"""

import argparse
import contextlib
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import in_test_database  # noqa: E402 - the bench folder is put on the path just above


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    if not os.environ.get("CELERY_BROKER_URL"):
        sys.exit("set CELERY_BROKER_URL (a Redis this run may publish to)")
    in_test_database(lambda: run(args.requests))


@contextlib.contextmanager
def frozen_broker():
    """A socket that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=256) as server:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


@contextlib.contextmanager
def publishing_to(url: str | None, circuit_seconds: int):
    """Publish to ``url`` (None: the configured broker) with fresh connection pools."""
    from django.conf import settings

    from homevisit.celery import app, publish_circuit

    previous = os.environ.get("CELERY_BROKER_WRITE_URL"), settings.PUBLISH_CIRCUIT_OPEN_SECONDS
    if url:
        os.environ["CELERY_BROKER_WRITE_URL"] = url
    settings.PUBLISH_CIRCUIT_OPEN_SECONDS = circuit_seconds
    app._pool = None
    app.amqp._producer_pool = None
    publish_circuit.close()
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None
        os.environ.pop("CELERY_BROKER_WRITE_URL", None)
        if previous[0]:
            os.environ["CELERY_BROKER_WRITE_URL"] = previous[0]
        settings.PUBLISH_CIRCUIT_OPEN_SECONDS = previous[1]
        publish_circuit.close()


def run(requests: int) -> None:
    import redis
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from homevisit.celery import app
    from schools.models import Phase, Role
    from tests import factories
    from visits.models import SafetyReport, Visit
    from visits.safety import safety_report_create

    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/cgi-bin/webhook/send?key=bench"
    settings.ALLOWED_HOSTS = ["testserver"]
    app.conf.task_always_eager = False
    factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)
    school = factories.SchoolFactory()
    teacher = factories.UserFactory(school=school)
    factories.UserFactory(school=school, role=Role.SCHOOL_ADMIN)
    school_class = factories.SchoolClassFactory(school=school, head_teacher=teacher)
    student = factories.StudentFactory(school_class=school_class)
    client = Client()
    client.force_login(teacher)

    def visit_post() -> float:
        data = {
            "visited_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            "method": "phone",
            "students": [str(student.pk)],
            "contents": ["learning"],
            "situation": "电话沟通学习情况。",
            "integrity_declared": "on",
            "suggestions-TOTAL_FORMS": "0",
            "suggestions-INITIAL_FORMS": "0",
            "action": "submit",
        }
        started = time.perf_counter()
        response = client.post(reverse("visit_create"), data, secure=True)
        elapsed = time.perf_counter() - started
        assert response.status_code == 302, response.status_code
        return elapsed

    def check_in() -> float:
        report = safety_report_create(
            teacher=teacher,
            students=[student],
            companions=[],
            address=f"幸福路 {time.perf_counter_ns()} 号",
            planned_start=timezone.now(),
            expected_minutes=60,
            phone="13812345678",
        )
        # As beat's overdue sweep leaves it: the check-in then tells the alarmed school admins.
        SafetyReport.objects.filter(pk=report.pk).update(
            status=SafetyReport.Status.OVERDUE, overdue_notified_at=timezone.now()
        )
        started = time.perf_counter()
        response = client.post(reverse("safety_check_in", args=[report.public_id]), secure=True)
        elapsed = time.perf_counter() - started
        assert response.status_code == 302, response.status_code
        return elapsed

    cases = [
        ("broker answering", None, settings.PUBLISH_CIRCUIT_OPEN_SECONDS),
        ("frozen, circuit", "frozen", settings.PUBLISH_CIRCUIT_OPEN_SECONDS),
        ("frozen, no circuit", "frozen", 0),
    ]
    print(f"{'submission':<12} {'broker':<20} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    results = {}
    for name, submit in (("visit", visit_post), ("check-in", check_in)):
        for label, broker, circuit_seconds in cases:
            visits_before, returned_before = Visit.objects.count(), _returned(SafetyReport)
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(frozen_broker()) if broker == "frozen" else None
                stack.enter_context(publishing_to(url, circuit_seconds))
                times = sorted(submit() for _ in range(requests))
            if name == "visit":
                stored = Visit.objects.count() - visits_before
            else:
                stored = _returned(SafetyReport) - returned_before
            assert stored == requests, f"{name}/{label}: {stored} of {requests} stored"
            p95 = times[max(0, round(0.95 * len(times)) - 1)]
            results[name, label] = p95
            print(
                f"{name:<12} {label:<20} {len(times):>3} {statistics.median(times) * 1000:>8.1f} "
                f"{p95 * 1000:>8.1f} {times[-1] * 1000:>8.1f}"
            )
    # The robot messages published to the answering broker: no worker takes them here.
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(app.conf.task_default_queue)
    for name in ("visit", "check-in"):
        ratio = results[name, "frozen, circuit"] / results[name, "broker answering"]
        print(f"{name}: frozen p95 / answering p95 = {ratio:.2f} (target <= 2)")


def _returned(model) -> int:
    return model.objects.filter(status=model.Status.RETURNED).count()


if __name__ == "__main__":
    main()
