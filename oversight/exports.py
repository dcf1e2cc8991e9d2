"""The 督查记录台账 export (DESIGN §6): a row generator handed to the one writer of
``schools.exports`` in the 台账 layout."""

import datetime
from collections.abc import Iterable, Iterator

from oversight.models import Inspection
from schools.exports import ExportFile, LedgerHeading, write_ledger_xlsx
from schools.models import Role, User
from schools.privacy import redact_contacts

HEADER = ["学校", "督查日期", "督查方式", "督查人", "发现问题", "整改要求", "整改期限", "状态", "是否逾期"]
WIDTHS = [22, 12, 12, 10, 40, 36, 12, 12, 10]


def inspection_rows(inspections: Iterable[Inspection], *, today: datetime.date) -> Iterator[list]:
    """Header, then one row per inspection (``select_related`` school and inspector); the ledger
    writer puts 序号 in front. Phone and ID numbers typed into the findings and the rectification
    are masked, as in every export (DESIGN §8)."""
    yield HEADER
    for item in inspections:
        yield [
            item.school.name,
            item.date,
            item.get_how_display(),
            item.inspector.display_name,
            redact_contacts(item.findings),
            redact_contacts(item.rectification) or "无需整改",
            item.deadline or "",
            item.get_status_display(),
            "逾期" if item.is_overdue(today) else "",
        ]


def inspection_export_file(inspections, *, user: User, today: datetime.date) -> ExportFile:
    unit = user.school.name if user.role == Role.SCHOOL_ADMIN and user.school_id else "县教育局"
    return write_ledger_xlsx(
        inspection_rows(inspections, today=today),
        filename=f"督查记录台账_{today:%Y%m%d}.xlsx",
        heading=LedgerHeading(
            title="“万名教师大家访”督查记录台账", unit=unit, filled_by=user.display_name, phone=user.phone, day=today
        ),
        sheet_title="督查记录台账",
        widths=WIDTHS,
    )
