"""Row generators of the support ledger and the care log exports (DESIGN §6): each yields its
header, then its rows; ``schools.exports.write_ledger_xlsx`` writes them in the 台账 layout.

A masked export (the default, and the only one for the county's roles) carries the student number
masked, the categories generalised to 「特殊学生」 / 「关爱对象」, and no measures, reasons or notes."""

import datetime
from collections.abc import Iterator

from ledgers.care import CareLog
from ledgers.care_models import CareAsk
from ledgers.support import RowStatus, SupportLedger, category_labels
from schools.exports import Marked
from schools.privacy import mask_id_number
from students.models import IN_HOME_VISITS_REQUIRED

MISSED_FILL = "FFC7CE"
AWAY_FILL = "FFEB9C"
MARKS = {
    CareAsk.Outcome.FACE: "√",
    CareAsk.Outcome.PHONE: "√",
    CareAsk.Outcome.WECHAT: "√",
    CareAsk.Outcome.LEAVE: "假",
    CareAsk.Outcome.ABSENT: "缺",
}


def support_rows(ledger: SupportLedger, *, full: bool) -> Iterator[list]:
    yield [
        "班级",
        "姓名",
        "学籍号",
        "帮扶类别",
        "责任教师",
        "监护人知情同意",
        "同意日期",
        "经济上扶持",
        "生活上照顾",
        "学习上帮助",
        "思想上激励",
        f"本学年入户家访（要求{IN_HOME_VISITS_REQUIRED}次）",
        "下次复核",
        "状态",
    ]
    for row in ledger.rows:
        plan = row.plan
        headings = plan.headings() if plan else []
        measures = [
            "；".join(
                filter(None, [h["measures"], h["who"] and f"责任人：{h['who']}", h["due"] and f"时限：{h['due']}"])
            )
            for h in headings
        ] or ["", "", "", ""]
        yield [
            row.student.school_class.name if row.student.school_class_id else "未分班",
            row.student.name,
            row.student.student_number if full else mask_id_number(row.student.student_number),
            "、".join(category_labels(row.categories, whole=full)),
            row.responsible.display_name if row.responsible else "",
            (plan.consent_by if full else ("已同意" if plan.consent_by else "")) if plan else "",
            plan.consent_on if plan else None,
            *(measures if full else ["（已填写）" if m else "" for m in measures]),
            row.in_home,
            plan.next_review_on if plan else None,
            "、".join(RowStatus.LABELS[code] for code in row.statuses()),
        ]


def _heading_text(heading: dict) -> str:
    parts = [heading["measures"]]
    if heading["who"]:
        parts.append(f"责任人：{heading['who']}")
    if heading["due"]:
        parts.append(f"时限：{heading['due']:%Y-%m-%d}")
    return "；".join(p for p in parts if p)


def care_month_rows(log: CareLog, *, month_days: list[datetime.date], full: bool) -> Iterator[list]:
    """One row per child, one column per school day of the month: √ asked, 假 on leave, 缺 absent,
    ✗ (red) missed, blank when not yet due; then the month's counts and meetings."""
    yield [
        "班级",
        "姓名",
        "学籍号",
        "类别",
        "班主任",
        *[f"{day.month}/{day.day}" for day in month_days],
        "应问天数",
        "已记录",
        "漏记",
        "每周一见（已见/应见）",
    ]
    for child in log.children:
        due = set(child.days_due)
        cells = []
        for day in month_days:
            ask = child.asks.get(day)
            if ask is not None:
                mark = MARKS[ask.outcome]
                cells.append(mark if mark == "√" else Marked(mark, AWAY_FILL))
            elif day in due:
                cells.append(Marked("✗", MISSED_FILL))
            else:
                cells.append("")
        month_due = [d for d in child.days_due if d in set(month_days)]
        done = sum(1 for d in month_due if d in child.asks)
        weeks = [w for w in child.weeks_due if any(w <= d < w + datetime.timedelta(days=7) for d in month_days)]
        met = sum(1 for w in weeks if w in child.meetings)
        student = child.student
        yield [
            student.school_class.name if student.school_class_id else "未分班",
            student.name,
            student.student_number if full else mask_id_number(student.student_number),
            "、".join(category_labels([c.category for c in student.care_rows], whole=full)),
            child.head_teacher.display_name if child.head_teacher else "",
            *cells,
            len(month_due),
            done,
            len(month_due) - done,
            f"{met}/{len(weeks)}",
        ]
