"""Benchmark: the county's statistics sheet listing every one of 2,000 schools.

Runs in a throw-away test database on whatever DATABASE_URL points at (SQLite by default):

    .venv/bin/python bench/statistics_sheet.py [--schools 2000] [--repeat 3]

Stores a county row, one row per zone and one per school (the rows ``ledgers.statistics`` would
compute), then downloads ``/statistics/sheet.xlsx?level=county&detail=schools`` as the bureau admin:
scope check, both sheets written, the audit row, the response read to its end. Prints the median
wall time. Target: under one second.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import in_test_database  # noqa: E402 - the bench folder is put on the path just above

ZONES = 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schools", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    in_test_database(lambda: run(args.schools, args.repeat))


def run(schools: int, repeat: int) -> None:
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from ledgers.models import WHOLE_CAMPAIGN, Level, UnitStatistics
    from schools.models import Role, School, Zone
    from tests import factories

    campaign = factories.CampaignFactory()
    factories.PhaseFactory(campaign=campaign)
    zones = Zone.objects.bulk_create(Zone(name=f"第{z + 1}片区", code=f"Z{z + 1:02d}") for z in range(ZONES))
    all_schools = School.objects.bulk_create(
        School(zone=zones[s % ZONES], name=f"示例县第{s + 1}学校", code=f"S{s + 1:05d}", kind=School.Kind.PRIMARY)
        for s in range(schools)
    )
    now = timezone.now()

    def row(level: str, unit_id: int, name: str, index: int, **kwargs) -> UnitStatistics:
        return UnitStatistics(
            campaign=campaign,
            period=WHOLE_CAMPAIGN,
            level=level,
            unit_id=unit_id,
            name=name,
            computed_at=now,
            staff_total=40 + index % 20,
            teachers_participating=30 + index % 10,
            students_required=600 + index % 300,
            students_visited=500 + index % 100,
            students_total=600 + index % 300,
            visits=700,
            in_home_visits=400,
            focus_students=80,
            focus_visited=60,
            special_students=30,
            special_meeting_rule=20,
            categories={"left_behind": [40, 30], "economic_hardship": [20, 15]},
            **kwargs,
        )

    UnitStatistics.objects.bulk_create(
        [row(Level.COUNTY, 0, "全县", 0)]
        + [row(Level.ZONE, z.pk, z.name, i, zone=z, sort_key=z.code) for i, z in enumerate(zones)]
        + [
            row(Level.SCHOOL, s.pk, s.name, i, zone_id=s.zone_id, school=s, sort_key=s.code)
            for i, s in enumerate(all_schools)
        ],
        batch_size=500,
    )
    admin = factories.UserFactory(role=Role.BUREAU_ADMIN, school=None)
    client = Client()
    client.force_login(admin)
    url = reverse("statistics_sheet") + "?level=county&detail=schools"

    timings = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        content = b"".join(response.streaming_content)
        timings.append(time.perf_counter() - started)
        response.close()
        assert response.status_code == 200, response.status_code
        size = len(content)
    print(f"statistics sheet, county listing {schools} schools, {connection.vendor}, median of {repeat}:")
    print(f"  export   {statistics.median(timings):6.2f} s   ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
