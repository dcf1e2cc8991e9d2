# ruff: noqa: S603, S608 - the benchmark runs this checkout's own programs; database names come from DATABASE_URL
"""``make bench``: issue 9's figures on PostgreSQL, against their targets.

    DATABASE_URL=postgres://user@host/NAME .venv/bin/python bench/run.py

Environment: ``BENCH_SCALE`` = ``county`` (150 schools, 90,000 students, quick), ``city`` (1,500
schools, 900,000 students, ~2.5 M visits) or ``all`` (the default); ``BENCH_RUNS`` (default 3);
``BENCH_ONLY`` (comma-separated figures of ``bench/figures.py``, default all);
``BENCH_CLUSTER=0`` to skip the two-host check (``bench/cluster.py``); ``BENCH_ROSTER=0`` to skip
the roster import.

Each scale lives in its own database, ``NAME_county`` and ``NAME_city`` on the server of
DATABASE_URL, built with ``seed_demo`` the first time and reused afterwards (drop it to rebuild).
Writes ``bench/results/<date>.json`` and ``docs/benchmarks.md``. Never part of ``make test`` or CI.
"""

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = str(ROOT / ".venv/bin/python")

SCALES = {
    "county": {"schools": 150, "students_per_school": 600, "visit_rounds": 2},
    "city": {"schools": 1500, "students_per_school": 600, "visit_rounds": 2},
}
# The city set is built in minutes (issue 9, "The city data set in minutes"), so that make bench is practical.
SEED_LIMITS = {"city": 5 * 60}
# (figure key, label, unit, target as text, check(project median, baseline median) -> bool)
TARGETS = {
    "recompute": ("full recompute", "≤ 2× baseline", lambda p, b: p <= 2 * b),
    "refresh": ("one school's refresh", "≤ 5× baseline", lambda p, b: p <= 5 * b),
    "dashboard": ("county dashboard, 20 users, p95", "≤ 2× trivial page", lambda p, b: p <= 2 * b),
    "sheet": ("sheet of all schools", "≤ 3× baseline", lambda p, b: p <= 3 * b),
    "export": ("visit export, 100,000 rows", "< 20 s, < 200 MB", None),
}


def database_url(scale: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"{parts.path}_{scale}"))


def env_for(scale: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url(scale),
        "SECURE_SSL_REDIRECT": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-that-is-long-enough-0123456789"),
    }


def psql_admin(sql: str) -> str:
    import psycopg2

    parts = urlsplit(os.environ["DATABASE_URL"])
    connection = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
        result = cursor.fetchall() if cursor.description else []
    connection.close()
    return result


def data_set(scale: str) -> dict:
    """Create, migrate and seed the scale's database unless it has its schools; compute the
    statistics once. Returns what was done and how long the seed took (None when reused)."""
    name = urlsplit(database_url(scale)).path.lstrip("/")
    if not psql_admin(f"select 1 from pg_database where datname = '{name}'"):
        psql_admin(f'create database "{name}"')
    env = env_for(scale)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    count = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", "from schools.models import School; print(School.objects.count())"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    size = SCALES[scale]
    seeded = None
    if int(count) < size["schools"]:
        started = time.perf_counter()
        subprocess.run(
            [PYTHON, "manage.py", "seed_demo", "--reset", "--no-statistics"]
            + [f"--schools={size['schools']}", f"--students-per-school={size['students_per_school']}"]
            + [f"--visit-rounds={size['visit_rounds']}"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        seeded = time.perf_counter() - started
        (BENCH / "results" / f"seed-{scale}.json").write_text(
            json.dumps({"database": name, "seconds": seeded, "date": datetime.datetime.now(datetime.UTC).isoformat()})
            + "\n"
        )
        subprocess.run([PYTHON, "manage.py", "compute_statistics"], cwd=ROOT, env=env, check=True)
    return {"database": name, "seed_seconds": seeded}


def figures(scale: str, runs: int, only: str) -> dict:
    completed = subprocess.run(
        [PYTHON, str(BENCH / "figures.py"), "--runs", str(runs), "--only", only],
        cwd=ROOT,
        env=env_for(scale),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def roster_import() -> dict:
    """bench/roster_import.py on 50,000 rows once, its peak RSS taken by /usr/bin/time."""
    completed = subprocess.run(
        ["/usr/bin/time", "-f", "peak_rss_kb %M", PYTHON, str(BENCH / "roster_import.py"), "--rows", "50000"]
        + ["--repeat", "1"],
        cwd=ROOT,
        env=env_for("county"),
        capture_output=True,
        text=True,
        check=True,
    )
    stages = dict(re.findall(r"^\s+(\S+)\s+([\d.]+) s", completed.stdout, re.MULTILINE))
    seconds = float(stages.get("validate", 0)) + float(stages.get("apply", 0))
    peak = int(re.search(r"peak_rss_kb (\d+)", completed.stderr).group(1)) / 1024
    return {"project": [seconds], "peak_rss_mb": [peak], "stages": stages}


def cluster() -> dict:
    completed = subprocess.run(
        [PYTHON, str(BENCH / "cluster.py")], cwd=ROOT, env=env_for("county"), capture_output=True, text=True
    )
    lines = completed.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    result["exit"] = completed.returncode
    if completed.returncode:
        result["stderr"] = completed.stderr[-2000:]
    return result


def summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def rows_of(results: dict) -> list[list[str]]:
    table = []
    for scale, found in results["scales"].items():
        for key, (label, target, check) in TARGETS.items():
            figure = found.get("figures", {}).get(key)
            if not figure:
                continue
            project = summary(figure["project"])
            cpu = f"{statistics.median(figure['project_cpu']):.2f}" if figure.get("project_cpu") else ""
            if key == "export":
                peak = max(figure["peak_rss_mb"])
                met = project["median"] < 20 and peak < 200
                baseline, ratio = f"peak RSS {peak:.0f} MB", ""
            else:
                base = summary(figure["baseline"])
                met = check(project["median"], base["median"])
                baseline = f"{base['median']:.3f} ({base['min']:.3f}–{base['max']:.3f})"
                ratio = f"{project['median'] / base['median']:.1f}×"
            extra = f"; HTML {figure['bytes'] / 1024:.0f} KB" if key == "dashboard" else ""
            table.append(
                [
                    f"{label}, {scale}{extra}",
                    f"{project['median']:.3f} ({project['min']:.3f}–{project['max']:.3f})",
                    cpu,
                    baseline,
                    ratio,
                    str(project["runs"]),
                    f"{figure['load'][0]:.1f} → {figure['load'][1]:.1f}",
                    target,
                    "met" if met else "NOT met",
                ]
            )
    scales = results["scales"]
    if all(scales.get(s, {}).get("figures", {}).get("recompute") for s in ("county", "city")):
        county, city = (summary(scales[s]["figures"]["recompute"]["project"])["median"] for s in ("county", "city"))
        base = [summary(scales[s]["figures"]["recompute"]["baseline"])["median"] for s in ("county", "city")]
        growth = city / county
        table.append(
            [
                "growth county → city (10× data)",
                f"{growth:.1f}×",
                "",
                f"{base[1] / base[0]:.1f}×",
                "",
                "",
                "",
                "≤ 10×",
                "met" if growth <= 10 else "NOT met",
            ]
        )
    for dashboard_scale, found in scales.items():
        figure = found.get("figures", {}).get("dashboard")
        if figure:
            size = figure["bytes"] / 1024
            table.append(
                [f"county page size, {dashboard_scale}", f"{size:.0f} KB", "", "", "", "1", "", "≤ 200 KB"]
                + ["met" if size <= 200 else "NOT met"]
            )
    for seed_scale in scales:
        seeded = scales[seed_scale].get("seed_seconds")
        when = "this run"
        if seeded is None and (record := BENCH / "results" / f"seed-{seed_scale}.json").exists():
            earlier = json.loads(record.read_text())
            seeded, when = earlier["seconds"], f"built {earlier['date'][:16]} UTC, reused"
        if seeded is not None:
            limit = SEED_LIMITS.get(seed_scale)
            table.append(
                [f"data set built by `seed_demo`, {seed_scale} ({when})", f"{seeded:.0f}", "", "", "", "1", ""]
                + ([f"< {limit // 60} min", "met" if seeded < limit else "NOT met"] if limit else ["", ""])
            )
    roster = results.get("roster")
    if roster:
        seconds, peak = roster["project"][0], roster["peak_rss_mb"][0]
        table.append(
            ["roster import, 50,000 rows", f"{seconds:.1f}", "", f"peak RSS {peak:.0f} MB", "", "1", ""]
            + ["< 30 s, < 250 MB", "met" if seconds < 30 and peak < 250 else "NOT met"]
        )
    return table


def markdown(results: dict) -> str:
    header = ["figure", "project s: median (min–max)", "project CPU s", "baseline s", "ratio", "runs", "load"]
    header += ["target", "met"]
    lines = [
        "# Benchmarks (issue 9)",
        "",
        f"Measured {results['date']} on {results['machine']} by `make bench` "
        f"(`BENCH_SCALE={results['scale']}`, {results['runs']} runs, project and baseline alternating).",
        "Load is the 1-minute load average before → after the figure. The machine is shared; the",
        "project's own CPU seconds are given where they are measured in-process, as the figure least",
        "bent by other work. Regenerate with `make bench` (PostgreSQL and Redis running).",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows_of(results)]
    lines += ["", "Baselines: " + BASELINES, ""]
    if results.get("cluster"):
        lines += ["", "## Two web processes and two workers (bench/cluster.py)", "", "```"]
        lines += [json.dumps(results["cluster"], ensure_ascii=False, indent=1), "```"]
    notes = ROOT / "docs" / "benchmarks-notes.md"
    if notes.exists():
        lines += ["", notes.read_text()]
    return "\n".join(lines) + "\n"


BASELINES = (
    "recompute and refresh: `bench/seven_columns_limit.sql` (the seven columns in one statement, all "
    "schools or one); dashboard: the p95 of `/accounts/password/` (a trivial logged-in page) under the "
    "same 20 users; sheet: one SELECT of the stored school rows written to an unstyled XlsxWriter "
    "workbook; export and roster import: absolute targets."
)


def main() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("make bench needs DATABASE_URL=postgres://…")
    scale = os.environ.get("BENCH_SCALE", "all")
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    only = os.environ.get("BENCH_ONLY", "recompute,refresh,sheet,dashboard,export")
    scales = list(SCALES) if scale == "all" else [scale]
    results = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.python_version()}",
        "scale": scale,
        "runs": runs,
        "scales": {},
    }
    out = BENCH / "results" / f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}.json"
    out.parent.mkdir(exist_ok=True)

    def save():
        out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
        (ROOT / "docs" / "benchmarks.md").write_text(markdown(results))

    for name in scales:
        print(f"{name}: data set", file=sys.stderr, flush=True)
        results["scales"][name] = data_set(name)
        results["scales"][name]["figures"] = {}
        for figure in only.split(","):  # one process a figure, saved as it comes: a failure loses one
            print(f"{name}: {figure}", file=sys.stderr, flush=True)
            try:
                results["scales"][name]["figures"].update(figures(name, runs, figure))
            except subprocess.CalledProcessError as error:
                results["scales"][name].setdefault("failed", []).append(f"{figure}: exit {error.returncode}")
            save()
    if os.environ.get("BENCH_ROSTER", "1") != "0":
        print("roster import, 50,000 rows", file=sys.stderr, flush=True)
        try:
            results["roster"] = roster_import()
        except subprocess.CalledProcessError as error:
            results["roster_failed"] = f"exit {error.returncode}: {(error.stderr or '')[-1500:]}"
        save()
    if os.environ.get("BENCH_CLUSTER", "1") != "0":
        print("two web processes and two workers", file=sys.stderr, flush=True)
        results["cluster"] = cluster()
        save()
    print(f"wrote {out.relative_to(ROOT)} and docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()
