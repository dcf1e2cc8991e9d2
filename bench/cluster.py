# ruff: noqa: S603, S608 - the benchmark runs this checkout's own programs; database names come from DATABASE_URL
"""Scale past one machine, tested here (issue 9): two gunicorn processes and two Celery workers,
each on its own port or name, against one PostgreSQL and one Redis, as two hosts of each would be.

    DATABASE_URL=postgres://…/NAME CELERY_BROKER_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/cluster.py

On its own database (``NAME`` with ``_cluster`` in place of any ``_county`` suffix, rebuilt with
the demo county each run): full recomputes (``compute_statistics``) run while teachers submit
visits over HTTP, alternating between the two web processes; the workers take the refreshes the
submissions queue. When every school's stale mark is cleared, the stored figures must equal a
fresh recompute of the same data (every unit, every period) and the seven columns of the
independent statement (``bench/seven_columns_limit.sql``) for every school. Prints one JSON line;
exits 1 when a figure differs or a refresh was lost.
"""

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = str(ROOT / ".venv/bin/python")
TEACHERS = 12
VISITS_PER_TEACHER = 4
SETTLE_SECONDS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cluster_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    name = parts.path.lstrip("/").removesuffix("_county") + "_cluster"
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin(sql: str) -> list:
    import psycopg2

    parts = urlsplit(os.environ["DATABASE_URL"])
    connection = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall() if cursor.description else []
    connection.close()
    return rows


def main() -> None:
    url = cluster_url()
    name = urlsplit(url).path.lstrip("/")
    if not admin(f"select 1 from pg_database where datname = '{name}'"):
        admin(f'create database "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECURE_SSL_REDIRECT": "0",
        "STATISTICS_REFRESH_DELAY_SECONDS": "2",
    }
    if not env.get("CELERY_BROKER_URL", "").startswith("redis"):
        sys.exit("bench/cluster.py needs CELERY_BROKER_URL=redis://…")
    os.environ.update(env)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [PYTHON, "manage.py", "seed_demo", "--reset", "--no-statistics"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [PYTHON, "manage.py", "compute_statistics"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "homevisit.settings")
    import django

    django.setup()
    from django.test import Client

    from homevisit.celery import app
    from schools.models import Role, School, User
    from students.models import Student

    app.control.purge()  # nothing left in this Redis database from an earlier run
    processes: list[subprocess.Popen] = []
    ports = [free_port(), free_port()]
    logs = Path(tempfile.mkdtemp(prefix="hv-cluster-"))
    try:
        for index, port in enumerate(ports):
            processes.append(
                subprocess.Popen(
                    [str(ROOT / ".venv/bin/gunicorn"), "homevisit.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"]
                    + ["--log-level", "warning"],
                    cwd=ROOT,
                    env=env,
                    stderr=open(logs / f"hv-cluster-web{index}.log", "w"),  # noqa: SIM115 - closed with the process
                )
            )
        worker_logs = [logs / f"hv-cluster-worker{index}.log" for index in range(2)]
        for index, log in enumerate(worker_logs):
            processes.append(
                subprocess.Popen(
                    [str(ROOT / ".venv/bin/celery"), "-A", "homevisit", "worker", "-c", "1", "-n", f"bench{index}@%h"]
                    + ["--loglevel", "INFO", "--without-gossip", "--without-mingle"],
                    cwd=ROOT,
                    env=env,
                    stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
                    stderr=subprocess.STDOUT,
                )
            )
        # One beat: its sweep (every STATISTICS_SWEEP_INTERVAL) queues a refresh for each school a
        # submission marked stale, and the two workers take them (DESIGN: the mark is a row, the
        # sweep the only sender on a real broker).
        processes.append(
            subprocess.Popen(
                [str(ROOT / ".venv/bin/celery"), "-A", "homevisit", "beat", "--loglevel", "INFO"]
                + ["--schedule", str(logs / "celerybeat-schedule")],
                cwd=ROOT,
                env=env,
                stdout=open(logs / "hv-cluster-beat.log", "w"),  # noqa: SIM115 - closed with the process
                stderr=subprocess.STDOUT,
            )
        )
        for port in ports:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)

        # Teachers with students of their own class, each logged in (the sessions are in the database).
        teachers = []
        for teacher in User.objects.filter(role=Role.TEACHER, is_active=True, headed_classes__isnull=False).distinct()[
            :TEACHERS
        ]:
            pupils = list(
                Student.objects.filter(school_class__head_teacher=teacher, status=Student.Status.ACTIVE)
                .order_by("pk")
                .values_list("pk", flat=True)[:VISITS_PER_TEACHER]
            )
            client = Client(HTTP_HOST="127.0.0.1")
            client.force_login(teacher)
            teachers.append((teacher, client.cookies["sessionid"].value, pupils))

        # Full recomputes, one after another, for as long as the teachers are submitting.
        recomputes: list[subprocess.CompletedProcess] = []
        submitting = threading.Event()
        submitting.set()

        def recompute_while_submitting() -> None:
            while submitting.is_set() or not recomputes:
                recomputes.append(
                    subprocess.run(
                        [PYTHON, "manage.py", "compute_statistics"], cwd=ROOT, env=env, capture_output=True, text=True
                    )
                )

        recomputing = threading.Thread(target=recompute_while_submitting)
        recomputing.start()
        submitted, failures = [], []
        lock = threading.Lock()

        def submit(position: int, teacher, session: str, pupils: list[int]) -> None:
            token = secrets.token_hex(16)  # 32 characters: the CSRF secret, sent as cookie and field
            for number, pupil in enumerate(pupils):
                port = ports[(position + number) % 2]
                body = urlencode(
                    {
                        "csrfmiddlewaretoken": token,
                        "visited_at": time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 3600)),
                        "method": "in_home",
                        "students": str(pupil),
                        "guardians_met": "监护人",
                        "contents": "learning",
                        "situation": "压力测试：两台网站进程同时提交。",
                        "measures": "",
                        "consent_recorded": "on",
                        "integrity_declared": "on",
                        "suggestions-TOTAL_FORMS": "0",
                        "suggestions-INITIAL_FORMS": "0",
                        "suggestions-MIN_NUM_FORMS": "0",
                        "suggestions-MAX_NUM_FORMS": "10",
                        "action": "submit",
                    }
                )
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                connection.request(
                    "POST",
                    "/visits/new/",
                    body=body,
                    headers={
                        "Cookie": f"sessionid={session}; csrftoken={token}",
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Host": "127.0.0.1",
                    },
                )
                response = connection.getresponse()
                response.read()
                connection.close()
                with lock:
                    (submitted if response.status == 302 else failures).append(
                        (teacher.pk, pupil, port, response.status)
                    )

        threads = [threading.Thread(target=submit, args=(position, *entry)) for position, entry in enumerate(teachers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        submit_seconds = time.perf_counter() - started
        submitting.clear()
        recomputing.join()

        # Every refresh answered: no school left marked stale (the workers clear the marks).
        deadline = time.monotonic() + SETTLE_SECONDS
        while School.objects.filter(statistics_stale_since__isnull=False).exists() and time.monotonic() < deadline:
            time.sleep(2)
        stale_left = list(School.objects.filter(statistics_stale_since__isnull=False).values_list("pk", flat=True))
        stored = figures_snapshot()
        refreshes = sum(log.read_text().count("statistics_refresh_school") for log in worker_logs)
        by_worker = [log.read_text().count("succeeded in") for log in worker_logs]

        from django.utils import timezone

        from ledgers.statistics import statistics_compute
        from schools.models import Campaign

        statistics_compute(campaign=Campaign.current(timezone.localdate()))
        fresh = figures_snapshot()
        differing = sorted(key for key in fresh if stored.get(key) != fresh[key])[:20]
        independent = seven_columns_differences()
        result = {
            "web_processes": ports,
            "workers": 2,
            "visits_submitted": len(submitted),
            "submissions_failed": failures[:5],
            "by_port": {str(port): sum(1 for *_, p, _s in submitted if p == port) for port in ports},
            "submit_seconds": round(submit_seconds, 1),
            "recomputes_during_submission": [run.stdout.strip() for run in recomputes],
            "recompute_exits": [run.returncode for run in recomputes],
            "schools_left_stale": stale_left,
            "refresh_task_log_lines": refreshes,
            "tasks_succeeded_per_worker": by_worker,
            "units_checked": len(fresh),
            "units_differing_from_a_fresh_recompute": differing,
            "schools_differing_from_the_independent_statement": independent[:20],
        }
        ok = not failures and not stale_left and not differing and not independent
        ok = ok and all(run.returncode == 0 for run in recomputes)
        result["exact"] = ok
        print(json.dumps(result, ensure_ascii=False))
        sys.exit(0 if ok else 1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


FIGURES = (
    "staff_total",
    "teachers_participating",
    "students_required",
    "students_visited",
    "students_total",
    "visits",
    "in_home_visits",
    "focus_students",
    "focus_visited",
    "special_students",
    "special_meeting_rule",
    "care_students",
    "open_feedback",
    "categories",
)


def figures_snapshot() -> dict:
    """{(period, level, unit id): the unit's figures} of every stored row."""
    from ledgers.models import UnitStatistics

    return {
        (row["period"], row["level"], row["unit_id"]): tuple(json.dumps(row[f], sort_keys=True) for f in FIGURES)
        for row in UnitStatistics.objects.values("period", "level", "unit_id", *FIGURES)
    }


def seven_columns_differences() -> list:
    """Schools whose stored whole-campaign figures differ from the independent statement's count."""
    from django.db import connection
    from django.utils import timezone
    from figures import seven_columns_sql  # noqa: PLC0415 - bench/ is on the path of this script

    from ledgers.models import WHOLE_CAMPAIGN, Level, UnitStatistics
    from schools.models import Campaign

    campaign = Campaign.current(timezone.localdate())
    sql, _ = seven_columns_sql()  # the statement for every school, the same as the recompute's baseline
    with connection.cursor() as cursor:
        cursor.execute(sql)
        names = [column.name for column in cursor.description]
        counted = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    stored = {
        row.unit_id: row
        for row in UnitStatistics.objects.filter(campaign=campaign, period=WHOLE_CAMPAIGN, level=Level.SCHOOL)
    }
    differing = []
    for school_id, count in counted.items():
        row = stored.get(school_id)
        mine = (row.teachers_participating, row.students_visited, row.students_total, row.staff_total) if row else None
        theirs = (count["participating"], count["visited"], count["total"], count["staff_total"])
        if mine != theirs:
            differing.append({"school": school_id, "stored": mine, "counted": theirs})
    return differing


if __name__ == "__main__":
    main()
