"""Benchmark: the county's work ledger (工作台账) exported by its Celery task, 100,000 students.

Runs in a throw-away test database on whatever DATABASE_URL points at (SQLite by default):

    .venv/bin/python bench/ledger_export.py [--students 100000] [--schools 20] [--also 10000]

Stores the schools, one class per 50 students, the students, and a first-round visit for every
other student (with its visit–student row), then runs ``ledgers.jobs.ledger_export_run`` for a
county job as the bureau admin: scope check, the statuses read in chunks, one sheet per school in
the 台账 layout written by the write-only writer, the file copied to its place, the audit row.

Prints, for each size, the wall time and the process's peak resident memory during the export
(VmHWM, reset just before it through /proc/self/clear_refs), next to the resident memory before
it. Peak memory should stay flat: the export of 10× the rows should not take 10× the memory.
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import in_test_database  # noqa: E402 - the bench folder is put on the path just above

PER_CLASS = 50
BATCH = 5000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--also", type=int, default=10_000, help="a smaller export first, to compare (0: none)")
    args = parser.parse_args()
    in_test_database(lambda: run(args.students, args.schools, args.also))


def _memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def run(students: int, schools: int, also: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from ledgers.jobs import ledger_export_run
    from ledgers.models import LedgerExportJob, Level
    from schools.models import Campaign, Phase, Role, School, SchoolClass, SchoolYear, User, Zone
    from students.models import Student
    from visits.models import Method, Visit

    today = timezone.localdate()
    year = SchoolYear.objects.create(
        name="bench", start=today - datetime.timedelta(days=200), end=today + datetime.timedelta(days=100)
    )
    campaign = Campaign.objects.create(year=today.year, name="bench", school_year=year)
    first = Phase.objects.create(
        campaign=campaign,
        kind=Phase.Kind.FULL_ROUND,
        start=today - datetime.timedelta(days=60),
        end=today + datetime.timedelta(days=10),
    )
    zone = Zone.objects.create(name="示例片区", code="Z01")
    all_schools = School.objects.bulk_create(
        School(zone=zone, name=f"示例县第{s + 1}学校", code=f"S{s + 1:05d}", kind=School.Kind.PRIMARY)
        for s in range(schools)
    )
    bureau = User.objects.create(username="bureau", real_name="局管理员", role=Role.BUREAU_ADMIN)
    teachers = User.objects.bulk_create(
        User(username=f"t{s}", real_name=f"教师{s}", role=Role.TEACHER, school=school)
        for s, school in enumerate(all_schools)
    )
    started = time.monotonic()
    per_school = students // schools
    classes = SchoolClass.objects.bulk_create(
        SchoolClass(school=school, school_year=year, grade=1 + c % 6, number=1 + c // 6)
        for school in all_schools
        for c in range(per_school // PER_CLASS)
    )
    by_school: dict[int, list[SchoolClass]] = {}
    for school_class in classes:
        by_school.setdefault(school_class.school_id, []).append(school_class)
    pupils = (
        Student(
            school=school,
            school_class=by_school[school.pk][n // PER_CLASS],
            name=f"学生{s}-{n}",
            gender="M",
            student_number=f"G{s:03d}{n:08d}",
        )
        for s, school in enumerate(all_schools)
        for n in range(per_school)
    )
    created = 0
    while True:
        batch = [pupil for _, pupil in zip(range(BATCH), pupils, strict=False)]
        if not batch:
            break
        Student.objects.bulk_create(batch, batch_size=1000)
        created += len(batch)
    visited = list(
        Student.objects.order_by("pk").values_list("pk", "school_id")[::2]  # every other student
    )
    when = timezone.now() - datetime.timedelta(days=5)
    teacher_of = {teacher.school_id: teacher.pk for teacher in teachers}
    for start in range(0, len(visited), BATCH):
        chunk = visited[start : start + BATCH]
        visits = Visit.objects.bulk_create(
            [
                Visit(
                    school_id=school_id,
                    lead_teacher_id=teacher_of[school_id],
                    visited_at=when,
                    phase=first,
                    method=Method.PHONE,
                    status=Visit.Status.SUBMITTED,
                    submitted_at=when,
                    integrity_declared=True,
                )
                for _, school_id in chunk
            ],
            batch_size=1000,
        )
        Visit.students.through.objects.bulk_create(
            [
                Visit.students.through(visit_id=visit.pk, student_id=pk)
                for visit, (pk, _) in zip(visits, chunk, strict=True)
            ],
            batch_size=1000,
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(
        f"{connection.vendor}: {created} students in {schools} schools, {len(visited)} visits; "
        f"built in {time.monotonic() - started:.1f} s"
    )

    sizes = [size for size in (also, students) if size]
    for size in sizes:
        school_count = max(1, size // per_school)
        job = LedgerExportJob.objects.create(
            user=bureau,
            kind=LedgerExportJob.Kind.WORK,
            level=Level.COUNTY,
            unit_id=0,
            unit_name="全县",
            file_name="bench.xlsx",
        )
        if school_count < schools:  # the smaller run: the first schools only, through a zone of their own
            small = Zone.objects.create(name=f"前{school_count}校", code=f"B{size}")
            School.objects.filter(pk__in=[s.pk for s in all_schools[:school_count]]).update(zone=small)
            job.level, job.unit_id, job.unit_name = Level.ZONE, small.pk, small.name
            job.save()
        rss_before = _memory_kib("VmRSS")
        _reset_peak()
        started = time.monotonic()
        ledger_export_run.run(job.pk)
        seconds = time.monotonic() - started
        peak = _memory_kib("VmHWM")
        job.refresh_from_db()
        size_mib = job.path.stat().st_size / 2**20 if job.path.exists() else 0
        print(
            f"  {job.done_rows:>7} rows ({job.get_status_display()}): {seconds:.1f} s, "
            f"RSS before {rss_before / 1024:.0f} MiB, peak during export {peak / 1024:.0f} MiB "
            f"(+{(peak - rss_before) / 1024:.0f} MiB), file {size_mib:.1f} MiB"
        )
        if school_count < schools:
            School.objects.filter(zone__code=f"B{size}").update(zone=zone)
        if job.path.exists():
            job.path.unlink()


if __name__ == "__main__":
    main()
