# ruff: noqa: S603 - the benchmark runs this checkout's own programs
"""The figures of issue 9 for one data set, measured on the PostgreSQL database DATABASE_URL names
(built by ``bench/run.py``). Prints one JSON object: {figure: {"project": [seconds...],
"baseline": [seconds...], ...}}. Project and baseline alternate run by run, so that the noise of a
shared machine hits both.

    DATABASE_URL=postgres://…/hv_x_county .venv/bin/python bench/figures.py --runs 3 [--only recompute,…]

Figures (each a function below): ``recompute`` (the nightly full recompute against the seven
columns in one statement, ``bench/seven_columns_limit.sql``), ``refresh`` (one school's refresh
against the same statement for that school), ``sheet`` (the county's statistics sheet listing every
school against one SELECT of the same stored rows written to an unstyled workbook), ``dashboard``
(the county dashboard's p95 under 20 concurrent users of a real gunicorn, against a trivial
logged-in page; and its HTML size), ``export`` (the visit export's row generator and writer on
100,000 (visit, student) rows, in a child process for its peak RSS).
"""

import argparse
import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "homevisit.settings")

USERS = 20
REQUESTS_PER_USER = 10
EXPORT_ROWS = 100_000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    cpu, started = cpu_seconds(), time.perf_counter()
    function()
    return time.perf_counter() - started, cpu_seconds() - cpu


def seven_columns_sql(*, school_id: int | None = None) -> tuple[str, list]:
    from django.utils import timezone

    from schools.models import Campaign

    campaign = Campaign.current(timezone.localdate())
    phases = list(campaign.phases.values_list("pk", flat=True))
    text = (BENCH / "seven_columns_limit.sql").read_text()
    one = "" if school_id is None else str(int(school_id))
    staff = f"select id from schools_user where school_id = {one}"  # noqa: S608 - an int
    sql = text % {
        "phases": ", ".join(str(int(pk)) for pk in phases),
        "where": f"where sc.id = {one}" if one else "",
        "staff_school": f" and school_id = {one}" if one else "",
        "student_school": f" and school_id = {one}" if one else "",
        "lead_school": f" and v.lead_teacher_id in ({staff})" if one else "",
        "companion_school": f" and vc.user_id in ({staff})" if one else "",
        "visited_school": f" and s.school_id = {one}" if one else "",
    }
    return sql, []


def sql_run(sql: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        cursor.fetchall()


def alternate(project, baseline, runs: int) -> dict:
    result = {"project": [], "baseline": [], "project_cpu": []}
    for _ in range(runs):
        wall, cpu = timed(project)
        result["project"].append(wall)
        result["project_cpu"].append(cpu)
        result["baseline"].append(timed(baseline)[0])
    return result


# --- the statistics ------------------------------------------------------------------------------


def figure_recompute(runs: int) -> dict:
    from ledgers.statistics import statistics_recompute_all

    sql, _ = seven_columns_sql()

    def project():
        assert statistics_recompute_all() is not None, "another full recompute holds the lease"

    return alternate(project, lambda: sql_run(sql), runs)


def figure_refresh(runs: int) -> dict:
    from django.utils import timezone

    from ledgers.statistics import statistics_compute
    from schools.models import Campaign, School

    campaign = Campaign.current(timezone.localdate())
    school_id = School.objects.order_by("pk").values_list("pk", flat=True)[School.objects.count() // 2]
    sql, _ = seven_columns_sql(school_id=school_id)
    return alternate(lambda: statistics_compute(campaign=campaign, school_ids=[school_id]), lambda: sql_run(sql), runs)


# --- the statistics sheet --------------------------------------------------------------------------


def _bureau_client():
    from django.test import Client

    from schools.models import Role, User

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.filter(role=Role.BUREAU_ADMIN, is_active=True).order_by("pk").first())
    return client


def figure_sheet(runs: int) -> dict:
    import xlsxwriter
    from django.db import connection
    from django.urls import reverse

    client = _bureau_client()
    url = reverse("statistics_sheet") + "?level=county&detail=schools"
    size = {"bytes": 0}

    def project():
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        size["bytes"] = len(b"".join(response.streaming_content))
        response.close()

    def baseline():
        with connection.cursor() as cursor, tempfile.TemporaryFile() as target:
            cursor.execute(
                "select name, staff_total, teachers_participating, students_required, students_visited,"
                " students_total from ledgers_unitstatistics where level = 'school' and period = 'campaign'"
                " order by sort_key, name"
            )
            workbook = xlsxwriter.Workbook(target, {"constant_memory": True})
            sheet = workbook.add_worksheet()
            for index, row in enumerate(cursor.fetchall()):
                sheet.write_row(index, 0, row)
            workbook.close()

    result = alternate(project, baseline, runs)
    result["bytes"] = size["bytes"]
    return result


# --- the dashboard under load -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _load(port: int, path: str, cookie: str) -> list[float]:
    """USERS threads, each REQUESTS_PER_USER requests one after another on its own connection;
    the latency of every request, in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[str] = []

    def user():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        try:
            for _ in range(REQUESTS_PER_USER):
                started = time.perf_counter()
                connection.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
                response = connection.getresponse()
                response.read()
                mine.append(time.perf_counter() - started)
                if response.status != 200:
                    failures.append(f"{path}: {response.status}")
        except Exception as error:  # noqa: BLE001 - reported below, with the others
            failures.append(f"{path}: {error!r}")
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=user) for _ in range(USERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    return latencies


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def figure_dashboard(runs: int) -> dict:
    from django.urls import reverse

    client = _bureau_client()
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    size = len(client.get(reverse("statistics_county")).content)
    port = free_port()
    workers = str(2 * (os.cpu_count() or 1))
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "homevisit.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            workers,
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "SECURE_SSL_REDIRECT": "0"},
    )
    try:
        for _ in range(300):
            assert server.poll() is None, "gunicorn did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        dashboard, trivial = reverse("statistics_county"), reverse("password_change")
        _load(port, dashboard, cookie)  # warm every worker
        _load(port, trivial, cookie)
        result = {"project": [], "baseline": [], "bytes": size, "workers": int(workers)}
        for _ in range(runs):
            result["project"].append(p95(_load(port, dashboard, cookie)))
            result["baseline"].append(p95(_load(port, trivial, cookie)))
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


# --- the visit export --------------------------------------------------------------------------------


def figure_export(runs: int) -> dict:
    result = {"project": [], "project_cpu": [], "peak_rss_mb": [], "rows": EXPORT_ROWS}
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, str(BENCH / "figures.py"), "--export-child"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        child = json.loads(completed.stdout.strip().splitlines()[-1])
        result["project"].append(child["seconds"])
        result["peak_rss_mb"].append(child["peak_rss_mb"])
        result["project_cpu"].append(child["cpu"])
        result["rows"] = child["rows"]
    return result


def export_child() -> None:
    """In a fresh process: the first EXPORT_ROWS (visit, student) rows in the export's order, through
    the export's own row generator and the one writer; prints seconds, rows and peak RSS."""
    import django

    django.setup()
    from schools.exports import write_xlsx
    from visits.models import Visit
    from visits.views.school import EXPORT_WIDTHS, visit_export_rows

    started = time.perf_counter()
    last = Visit.students.through.objects.order_by("pk").values_list("pk", flat=True)[EXPORT_ROWS - 1 : EXPORT_ROWS]
    pairs = Visit.students.through.objects.filter(pk__lte=last[0]).order_by(
        "student__school_class__grade",
        "student__school_class__number",
        "student__name",
        "student_id",
        "visit__visited_at",
        "visit_id",
    )
    export = write_xlsx(visit_export_rows(pairs), filename="bench.xlsx", sheet_title="家访记录", widths=EXPORT_WIDTHS)
    export.file.close()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu_seconds(), "rows": export.rows, "peak_rss_mb": peak}))


FIGURES = {
    "recompute": figure_recompute,
    "refresh": figure_refresh,
    "sheet": figure_sheet,
    "dashboard": figure_dashboard,
    "export": figure_export,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(FIGURES))
    parser.add_argument("--export-child", action="store_true")
    args = parser.parse_args()
    if args.export_child:
        export_child()
        return
    import django

    django.setup()
    results = {}
    for name in args.only.split(","):
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        results[name] = FIGURES[name](args.runs)
        results[name]["load"] = [load_before, os.getloadavg()[0]]
        print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
