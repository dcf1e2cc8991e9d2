"""Benchmark: validate and apply a 5,000-row roster, first import and re-import.

Runs in a throw-away test database on whatever DATABASE_URL points at (SQLite by default):

    .venv/bin/python bench/roster_import.py [--rows 5000] [--repeat 3]

Prints the median wall time of each stage. Targets: first import of 5,000 rows (validate + apply)
under 15 s on the 2-core CI machine; re-import (all unchanged) under 10 s.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import in_test_database  # noqa: E402 - the bench folder is put on the path just above


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-to", help=argparse.SUPPRESS)  # the child that builds the input file
    args = parser.parse_args()

    if args.write_to:
        write_roster(Path(args.write_to), args.rows)
        return
    in_test_database(lambda: run(args.rows, args.repeat))


def write_roster(path: Path, rows: int) -> None:
    """The input file, built by a write-only workbook (rows streamed to disk, not kept as cells)."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("学生名册")
    header, data = roster_rows(rows)
    sheet.append(header)
    for row in data:
        sheet.append(row)
    workbook.save(path)


def roster_file_bytes(rows: int) -> bytes:
    """The input file's bytes, built in a child process: its building must not count toward the peak
    memory measured of the import (the parent holds only the file's few MB)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "roster.xlsx"
        subprocess.run(  # noqa: S603 - this interpreter running this script, no outside input
            [sys.executable, str(Path(__file__).resolve()), "--rows", str(rows), "--write-to", str(path)], check=True
        )
        return path.read_bytes()


def run(rows: int, repeat: int) -> None:
    import tempfile

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import override_settings

    from schools.models import ImportJob, Role
    from schools.services import import_job_apply, import_job_confirm, import_job_create, import_job_validate
    from students.models import Student
    from students.roster_import import RosterImporter
    from tests import factories

    content = roster_file_bytes(rows)
    timings: dict[str, list[float]] = {"validate": [], "apply": [], "re-validate": [], "re-apply": []}
    with tempfile.TemporaryDirectory() as private, override_settings(PRIVATE_FILES_ROOT=Path(private)):
        for _ in range(repeat):
            Student.objects.all().delete()
            school = factories.SchoolFactory()
            admin = factories.UserFactory(role=Role.SCHOOL_ADMIN, school=school)
            for grade in range(1, 7):
                for number in range(1, 9):
                    factories.SchoolClassFactory(school=school, grade=grade, number=number)
            for stage in ("", "re-"):
                job = import_job_create(
                    kind=ImportJob.Kind.ROSTER,
                    school=school,
                    uploaded_by=admin,
                    upload=SimpleUploadedFile("roster.xlsx", content),
                )
                started = time.perf_counter()
                job = import_job_validate(job_id=job.pk, importer=RosterImporter())
                timings[f"{stage}validate"].append(time.perf_counter() - started)
                assert job.invalid_rows == 0, job.problems[:3]
                import_job_confirm(job=job, acting_user=admin, skip_invalid=False)
                started = time.perf_counter()
                job = import_job_apply(job_id=job.pk, importer=RosterImporter())
                timings[f"{stage}apply"].append(time.perf_counter() - started)
                assert job.status == ImportJob.Status.DONE, job.error
    from django.db import connection

    print(f"roster import, {rows} rows, {connection.vendor}, median of {repeat}:")
    for stage, values in timings.items():
        print(f"  {stage:<12} {statistics.median(values):6.2f} s")


def roster_rows(count: int) -> tuple[list[str], list[list]]:
    header = [
        "姓名",
        "性别",
        "全国学籍号",
        "身份证件号",
        "出生日期",
        "年级",
        "班级",
        "家庭住址",
        "监护人姓名",
        "监护人联系电话",
        "是否留守儿童",
    ]
    rows = []
    for index in range(count):
        grade = index % 6 + 1
        id_number = valid_id(index, grade)
        rows.append(
            [
                f"学生{index}",
                "男" if int(id_number[16]) % 2 else "女",
                f"G{id_number}",
                id_number,
                f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}",
                f"{grade}年级",
                f"{index // 6 % 8 + 1}班",
                "示例县城关镇幸福路 1 号",
                "王芳",
                f"139{index:08d}",
                "是" if index % 7 == 0 else "否",
            ]
        )
    return header, rows


def valid_id(index: int, grade: int) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    year = 2026 - 6 - grade
    # Unique for fewer than 335,664 rows: index read as (sequence 001-999, day, month); never ending 000.
    body = f"411421{year}{index % 12 + 1:02d}{index // 12 % 28 + 1:02d}{index // 336 % 999 + 1:03d}"
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


if __name__ == "__main__":
    main()
