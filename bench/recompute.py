"""Benchmark: the statistics recompute against the one-statement baseline (issue 9).

Runs on the data set DATABASE_URL points at (PostgreSQL, built with ``seed_demo``), writing only
the statistics tables:

    DATABASE_URL=postgres://… .venv/bin/python bench/recompute.py [--runs 7]

Alternates, in each round: the baseline statement for every school
(``../shared/bench/seven_columns_limit.sql``), the full recompute (``statistics_recompute_all``:
every class, school, teacher, zone, county and history row, the ANALYZE), the baseline for one
school, and one school's refresh (``statistics_compute`` with that school: its rows, its zone, the
county). A first full recompute fills the tables and is not counted. Prints the median, min and max
of each, the ratios, and the rows a second full run rewrote (none should be, when nothing changed).
Targets (issue 9): full ≤ 2× baseline; one school ≤ 5× the baseline's one-school statement.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "homevisit.settings")
BASELINE = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "seven_columns_limit.sql"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from ledgers.statistics import statistics_compute, statistics_recompute_all
    from schools.models import Campaign, School
    from visits.models import Visit

    campaign = Campaign.current(timezone.localdate())
    phases = ", ".join(str(pk) for pk in campaign.phases.values_list("pk", flat=True))
    template = args.baseline.read_text()
    school = School.objects.order_by("pk")[School.objects.count() // 2]

    def baseline(where: str) -> None:
        sql = template.replace("%(phases)s", phases).replace("%(where)s", where)
        with connection.cursor() as cursor:
            cursor.execute(sql)
            cursor.fetchall()

    def timed(call) -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    def rewritten() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(n_tup_upd + n_tup_ins), 0) FROM pg_stat_user_tables"
                " WHERE relname IN ('ledgers_unitstatistics', 'ledgers_teacherstatistics')"
            )
            return int(cursor.fetchone()[0])

    print(
        f"{School.objects.count()} schools, {Visit.objects.count()} visits; "
        f"one school: {school.code} ({school.students.count()} students)"
    )
    timed(statistics_recompute_all)  # fill the tables
    time.sleep(1)  # the statistics collector reports after a moment
    before = rewritten()
    statistics_recompute_all()
    time.sleep(1)
    print(f"rows inserted or updated by a second full run with nothing changed: {rewritten() - before}")

    results: dict[str, list[float]] = {"baseline_full": [], "full": [], "baseline_one": [], "one": []}
    for _ in range(args.runs):
        results["baseline_full"].append(timed(lambda: baseline("")))
        results["full"].append(timed(statistics_recompute_all))
        results["baseline_one"].append(timed(lambda: baseline(f"where sc.id = {school.pk}")))
        results["one"].append(timed(lambda: statistics_compute(campaign=campaign, school_ids=[school.pk])))
    with open("/proc/loadavg") as load:
        print(f"runs: {args.runs}; load average: {load.read().split()[0]}")
    for name, values in results.items():
        print(
            f"  {name:<14} median {statistics.median(values) * 1000:9.1f} ms"
            f"   min {min(values) * 1000:9.1f}   max {max(values) * 1000:9.1f}"
        )
    full = statistics.median(results["full"]) / statistics.median(results["baseline_full"])
    one = statistics.median(results["one"]) / statistics.median(results["baseline_one"])
    print(f"full recompute: {full:.2f}× the baseline (target ≤ 2×)")
    print(f"one school's refresh: {one:.2f}× the baseline's one-school statement (target ≤ 5×)")


if __name__ == "__main__":
    main()
