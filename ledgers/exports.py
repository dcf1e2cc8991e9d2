"""Exports of the stored statistics. Each is a row generator (header first, then rows) handed to the
one writer of ``schools.exports``, which streams the workbook to disk and neutralises every text
cell that a spreadsheet would run as a formula."""

import datetime
from collections.abc import Iterable, Iterator

from ledgers.models import TeacherStatistics
from schools.exports import ExportFile, write_xlsx
from schools.models import School

TEACHER_ASSESSMENT_HEADER = [
    "序号",
    "教师",
    "身份",
    "任教学生数",
    "已走访学生数",
    "覆盖率（%）",
    "家访人次",
    "入户家访人次",
    "已提交记录",
    "草稿记录",
    "计算时间",
]
TEACHER_ASSESSMENT_WIDTHS = [6, 14, 12, 12, 14, 12, 10, 14, 12, 10, 18]
NO_VALUE = "—"


def teacher_assessment_rows(rows: Iterable[TeacherStatistics]) -> Iterator[list]:
    """The teacher assessment (年度考核、师德考核): one row per member of staff, in the given order.
    ``rows`` carry their teacher (``select_related``); a coverage with no students shows 「—」."""
    yield TEACHER_ASSESSMENT_HEADER
    for number, row in enumerate(rows, start=1):
        coverage = row.coverage_rate
        yield [
            number,
            row.teacher.display_name,
            row.teacher.get_role_display(),
            row.students_assigned,
            row.students_visited,
            float(coverage) if coverage is not None else NO_VALUE,
            row.visits,
            row.in_home_visits,
            row.records_complete,
            row.records_draft,
            row.computed_at,
        ]


def teacher_assessment_export(
    rows: Iterable[TeacherStatistics], *, school: School, period_label: str, today: datetime.date
) -> ExportFile:
    """The teacher assessment of one school and period as an XLSX file."""
    return write_xlsx(
        teacher_assessment_rows(rows),
        filename=f"教师家访考核_{school.name}_{period_label}_{today:%Y%m%d}.xlsx",
        sheet_title="教师家访考核",
        widths=TEACHER_ASSESSMENT_WIDTHS,
    )
