"""The bureau's statistics sheet, 「万名教师大家访」活动情况统计表 (DESIGN §7), as XLSX.

One row generator (``statistics_sheet_rows``) yields the header, one row per unit below the
exporting one, then the 合计 row; one writer (``statistics_sheet_write``) lays those rows out on a
printable A4 landscape page under the title and the 报送单位 / 联系人 / 电话 / 年 月 日 line, with the
definitions as a note. The same generator, with other columns, fills the second sheet 「其他指标」.

Every figure comes from stored ``UnitStatistics`` rows: the 合计 row is the exporting unit's own row,
never a sum of the rows above it (and rates are never added up). Nothing here reads the visit table.

The workbook is written with XlsxWriter, a dozen shared cell formats made once per workbook.

Formula neutralisation: a text cell that starts with ``= + - @`` (or a tab or carriage return) is
written as a string cell (``write_string``, never a formula cell) with the *quote prefix* format,
the flag a spreadsheet sets when someone types a leading apostrophe, so that it stays text when the
cell is edited. The text shows unchanged: a phone number “+86 …” or a name
stays readable on paper. Unlike ``schools.exports.neutralise``, no apostrophe is added to the value,
because this sheet is printed and handed on.
"""

import datetime
import math
import tempfile
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

import xlsxwriter
from django.db.models import QuerySet
from django.utils import timezone
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from ledgers.models import Level, UnitStatistics
from ledgers.selectors import Period
from ledgers.statistics import FIGURES
from schools.exports import FORMULA_PREFIXES, XLSX_CONTENT_TYPE, ExportFile, display_width
from schools.models import Campaign, User
from students.models import FOCUS_CATEGORIES, Category
from visits.feedback import feedback_by_category_and_status
from visits.models import Suggestion

TITLE = "「万名教师大家访」活动情况统计表"
OTHER_SHEET_TITLE = "其他指标"
MAIN_SHEET_TITLE = "活动情况统计表"
TOTAL_LABEL = "合计"
NO_RATE = "—"  # a rate whose denominator is zero
RATE_FORMAT = "0.0%"
COMPUTED_AT_FORMAT = "%Y-%m-%d %H:%M"

# The levels a sheet can be exported for, and the level of the rows listed below each.
SHEET_LEVELS = (Level.COUNTY, Level.ZONE, Level.SCHOOL)
CHILD_LEVEL = {Level.COUNTY: Level.ZONE, Level.ZONE: Level.SCHOOL, Level.SCHOOL: Level.CLASS}

HEADER_ROW = 4  # title, the 报送单位 line, the period line, then the column header


class _Style:
    """The workbook's cell styles, by their index in ``_STYLES``: one XlsxWriter ``Format`` each,
    shared by every cell of that style (``_Formats``)."""

    TITLE, LINE, LINE_RIGHT, HEADER, TEXT, NUMBER, RATE = range(7)
    TOTAL_TEXT, TOTAL_NUMBER, TOTAL_RATE, NOTE_TITLE, NOTE = range(7, 12)


# XlsxWriter format properties: a thin black border on all four sides, solid fills.
_BORDER = {"border": 1, "border_color": "#000000"}
_CENTER = {"align": "center", "valign": "vcenter", "text_wrap": True}
_LEFT = {"align": "left", "valign": "vcenter", "text_wrap": True}
_NOTE = {"align": "left", "valign": "top", "text_wrap": True}
_HEADER_FILL = {"pattern": 1, "bg_color": "#DDEBF7"}
_TOTAL = {"bold": True, "pattern": 1, "bg_color": "#F2F2F2", **_BORDER}
_RATE = {"num_format": RATE_FORMAT}
_STYLES: tuple[dict, ...] = (
    {"bold": True, "font_size": 16, **_CENTER},  # TITLE
    # Heading lines shrink rather than spill or clip when a name is long.
    {"align": "left", "valign": "vcenter", "shrink": True},  # LINE
    {"align": "right", "valign": "vcenter", "shrink": True},  # LINE_RIGHT
    {"bold": True, **_HEADER_FILL, **_BORDER, **_CENTER},  # HEADER
    {**_BORDER, **_LEFT},  # TEXT
    {**_BORDER, **_CENTER},  # NUMBER
    {**_BORDER, **_CENTER, **_RATE},  # RATE
    {**_TOTAL, **_LEFT},  # TOTAL_TEXT
    {**_TOTAL, **_CENTER},  # TOTAL_NUMBER
    {**_TOTAL, **_CENTER, **_RATE},  # TOTAL_RATE
    {"bold": True, **_NOTE},  # NOTE_TITLE
    _NOTE,  # NOTE
)


@dataclass(frozen=True)
class Column:
    """One column of a sheet: its header, how wide it prints, and its value for a unit's row."""

    label: str
    value: Callable[[UnitStatistics], object]
    width: float
    is_rate: bool = False  # a Decimal percentage (or None, shown 「—」)


def _category_figure(code: str, index: int) -> Callable[[UnitStatistics], int]:
    def value(row: UnitStatistics) -> int:
        figures = row.categories.get(str(code)) or (0, 0)
        return int(figures[index])

    return value


# The seven columns of the attachment, in its order.
MAIN_COLUMNS: tuple[Column, ...] = (
    Column("单位", attrgetter("name"), 28),
    Column("参与家访教师数量", attrgetter("teachers_participating"), 17),
    Column("走访率", attrgetter("participation_rate"), 10, is_rate=True),
    Column("家访学生数量", attrgetter("students_required"), 13),
    Column("已走访人数", attrgetter("students_visited"), 12),
    Column("学生总数", attrgetter("students_total"), 13),
    Column("家访率", attrgetter("coverage_rate"), 14, is_rate=True),
)

# The further indicators. A label "group·column" puts the column under a group heading that spans
# its neighbours of the same group (a two-row header).
OTHER_COLUMNS: tuple[Column, ...] = (
    Column("单位", attrgetter("name"), 24),
    Column("教职工总数", attrgetter("staff_total"), 8),
    Column("家访人次·全部", attrgetter("visits"), 8),
    Column("家访人次·其中入户", attrgetter("in_home_visits"), 8),
    Column("重点关注学生·人数", attrgetter("focus_students"), 8),
    Column("重点关注学生·已走访", attrgetter("focus_visited"), 8),
    Column("重点关注学生·走访率", attrgetter("focus_coverage_rate"), 8, is_rate=True),
    *(
        column
        for code in FOCUS_CATEGORIES
        for column in (
            Column(f"{Category(code).label}·人数", _category_figure(code, 0), 8),
            Column(f"{Category(code).label}·已走访", _category_figure(code, 1), 8),
        )
    ),
    Column("特殊学生·人数", attrgetter("special_students"), 8),
    Column("特殊学生·入户家访满 2 次", attrgetter("special_meeting_rule"), 9),
    Column("特殊学生·达标率", attrgetter("special_rule_rate"), 8, is_rate=True),
    Column("特殊学生·已建一生一策", attrgetter("special_with_plan"), 9),
    Column("特殊学生·建档率", attrgetter("plan_rate"), 8, is_rate=True),
    Column("孤儿和事实无人抚养儿童", attrgetter("care_students"), 10),
    Column("每日一问·应记", attrgetter("care_asks_due"), 8),
    Column("每日一问·已记", attrgetter("care_asks_done"), 8),
    Column("每日一问·完成率", attrgetter("care_ask_rate"), 8, is_rate=True),
    Column("每周一见·应见", attrgetter("care_meetings_due"), 8),
    Column("每周一见·已见", attrgetter("care_meetings_done"), 8),
    Column("每周一见·完成率", attrgetter("care_meeting_rate"), 8, is_rate=True),
    Column("待处理家长意见", attrgetter("open_feedback"), 8),
    Column("超时未报平安", attrgetter("overdue_safety_reports"), 8),
)
GROUP_SEPARATOR = "·"
FEEDBACK_TABLE_TITLE = "问题反馈台账：家长意见按类别和状态（条）"

MAIN_NOTES = (
    "说明：",
    "1. 统计期间：一次家访计入其家访日期所在的阶段（阶段日期调整后按新日期重新计算）；全年指第一个阶段开始日至最后一个"
    "阶段结束日的每一天，含阶段之间的日子（如暑假）。只统计已提交的家访记录。",
    "2. 参与家访教师数量：学校、片区、全县为本单位在册教职工（在职的教师和学校管理员）中，统计期间内作为主访教师或"
    "同行人员参与过至少一次已提交家访的人数（每人只计一次，片区、全县为所属学校之和）；班级为本班班主任和任课教师中，"
    "统计期间内参与过本班学生的已提交家访的人数（只走访了其他班学生的不计入本班）。",
    "3. 走访率 = 参与家访教师数量 ÷ 本单位在册教职工总数（班级为本班班主任和任课教师人数），反映教师全员参与情况。",
    "4. 家访学生数量：统计期间应家访的学生数。第一轮全员家访及全年为全部在籍学生；"
    "第二轮重点回访为重点关注学生和特殊学生（按计算当日有效的类别）。",
    "5. 已走访人数：家访学生数量中，统计期间内至少有一次已提交家访记录的学生人数（每人只计一次）。学生计入其当前所在"
    "学校和班级。",
    "6. 学生总数：在籍学生人数。家访率 = 已走访人数 ÷ 家访学生数量，反映学生覆盖情况。",
    f"7. 比率保留一位小数；分母为 0 时显示「{NO_RATE}」。{TOTAL_LABEL}行是本单位自身的统计数（按人去重），"
    "不是上面各行比率的相加或平均。",
    "8. 数据由系统定时计算，以表头所列计算时间为准；之后提交的家访记录在下次计算后计入。",
)

OTHER_NOTES = (
    "说明：",
    "1. 家访人次、入户家访人次：统计期间内已提交的家访记录次数，其中上门（入户）家访的次数；"
    "一次家访走访多名学生计一次。",
    "2. 重点关注学生：属于经济困难家庭、学习困难、思想和学业上有重大变化、留守儿童（含单亲子女）、"
    "进城务工随迁子女、残疾学生六类之一的在籍学生，一名学生属于多类时在各类中分别计数、在合计中只计一次。",
    "3. 特殊学生须每学年入户家访不少于 2 次；达标率 = 入户家访满 2 次的特殊学生 ÷ 特殊学生。",
    "4. 待处理家长意见：家访中提交学校处理的家长意见条数；超时未报平安：家访报备超过预计返回时间仍未报平安的次数。",
    "5. 一生一策建档率 = 计算当日在册特殊学生中已建本学年帮扶计划（一生一策）的人数 ÷ 特殊学生。",
    "6. 关爱台账：孤儿和事实无人抚养儿童每个上学日应记每日一问、每个有上学日的周应记每周一见，统计至计算日前一天"
    "（全年自本学年第一学期开学日起，阶段自阶段开始日起）；完成率 = 已记 ÷ 应记，请假、未到校并注明的计为已记。",
    f"7. 分母为 0 时比率显示「{NO_RATE}」。{TOTAL_LABEL}行是本单位自身的统计数，不是上面各行相加。",
)


@dataclass(frozen=True)
class SheetHeading:
    """What the sheet says above the table: who reports, for which period, and how fresh it is."""

    unit_name: str
    contact_name: str
    contact_phone: str
    day: datetime.date
    campaign_name: str
    period_label: str
    computed_at: datetime.datetime


@dataclass(frozen=True)
class StatisticsSheet:
    """Everything the writer needs: the heading, the rows below the exporting unit, and its own row."""

    heading: SheetHeading
    units: Sequence["SheetUnit | UnitStatistics"]  # the rows below the exporting unit
    total: UnitStatistics
    # The feedback ledger's items by category and status (header row first), under the further
    # indicators; empty for none (issue 11, ``visits.feedback.feedback_by_category_and_status``).
    feedback: Sequence[Sequence] = ()


# --- reading the rows ------------------------------------------------------------------------


def sheet_child_rows(
    rows: QuerySet[UnitStatistics], unit: UnitStatistics, *, all_schools: bool = False
) -> QuerySet[UnitStatistics]:
    """The rows listed below ``unit``: a school's classes, a zone's schools, the county's zones (or,
    with ``all_schools``, every school of the county). ``rows`` is the caller's scope, e.g.
    ``UnitStatistics.objects.visible_to(user)``; one query, whatever the number of units."""
    level = CHILD_LEVEL[unit.level]
    if unit.level == Level.COUNTY and all_schools:
        level = Level.SCHOOL
    children = rows.filter(campaign_id=unit.campaign_id, period=unit.period, level=level)
    if unit.level == Level.ZONE:
        children = children.filter(zone_id=unit.unit_id)
    elif unit.level == Level.SCHOOL:
        children = children.filter(school_id=unit.unit_id)
    if level == Level.SCHOOL and unit.level == Level.COUNTY:
        # Schools grouped by zone, as the bureau files them.
        return children.order_by("zone__code", "sort_key", "name")
    return children.order_by("sort_key", "name")


# The stored figures the columns of both sheets read (directly or through a rate).
SHEET_FIELDS = ("name", *FIGURES, "categories")  # every figure the engine stores for a unit


class SheetUnit(namedtuple("SheetUnitFields", SHEET_FIELDS)):
    """One unit's row below the exporting unit: the stored figures as a tuple, with the model's own
    rate properties (they read only these fields), so that a rate here is the dashboards' rate.
    A model instance per unit cost twice as much to read: 44 against 20 ms of CPU for 1,500
    schools."""

    __slots__ = ()
    participation_rate = UnitStatistics.participation_rate
    coverage_rate = UnitStatistics.coverage_rate
    focus_coverage_rate = UnitStatistics.focus_coverage_rate
    special_rule_rate = UnitStatistics.special_rule_rate
    care_ask_rate = UnitStatistics.care_ask_rate
    care_meeting_rate = UnitStatistics.care_meeting_rate
    plan_rate = UnitStatistics.plan_rate


def sheet_units(children: QuerySet[UnitStatistics]) -> list[SheetUnit]:
    """The rows of ``children`` (e.g. ``sheet_child_rows``) in its order, in one query."""
    return [SheetUnit._make(values) for values in children.values_list(*SHEET_FIELDS)]


def sheet_contact(unit: UnitStatistics, user: User | None = None) -> tuple[str, str]:
    """联系人 and 电话: a school's contact on file; for a zone or the county, the person exporting."""
    if unit.level == Level.SCHOOL and unit.school is not None:
        return unit.school.contact_name, unit.school.contact_phone
    if user is not None:
        return user.display_name, user.phone
    return "", ""


def sheet_feedback_table(user: User, *, unit: UnitStatistics, period: Period) -> list[list]:
    """The unit's feedback items raised in the period by category and status (header first), read
    from the feedback ledger in one query (issue 11)."""
    items = Suggestion.objects.visible_to(user)
    if unit.level == Level.SCHOOL:
        items = items.filter(school_id=unit.unit_id)
    elif unit.level == Level.ZONE:
        items = items.filter(school__zone_id=unit.unit_id)
    if period.start:
        items = items.filter(raised_on__gte=period.start)
    if period.end:
        items = items.filter(raised_on__lte=period.end)
    return feedback_by_category_and_status(items)


def period_label(period: Period) -> str:
    """The period as the sheet names it: 全年, or the phase with its dates."""
    if period.phase is None:
        return "全年"
    if period.start and period.end:
        return f"{period.label}（{period.start:%Y-%m-%d} 至 {period.end:%Y-%m-%d}）"
    return period.label


def sheet_filename(unit: UnitStatistics, period: Period, day: datetime.date) -> str:
    """活动情况统计表_<unit>_<period>_<date>.xlsx, with nothing a file system would refuse."""
    name = "".join("_" if char in '\\/:*?"<>|' else char for char in unit.name)
    label = "全年" if period.phase is None else period.label
    return f"活动情况统计表_{name}_{label}_{day:%Y%m%d}.xlsx"


def statistics_sheet_export(
    *,
    rows: QuerySet[UnitStatistics],
    unit: UnitStatistics,
    campaign: Campaign,
    period: Period,
    all_schools: bool = False,
    contact: tuple[str, str] = ("", ""),
    day: datetime.date | None = None,
    feedback: Sequence[Sequence] = (),
) -> ExportFile:
    """The statistics sheet of ``unit`` (a row the caller fetched through its scope) as an XLSX file;
    ``rows`` scopes the units listed below it. One query reads them, then the writer streams both
    sheets to a temporary file."""
    day = day or timezone.localdate()
    heading = SheetHeading(
        unit_name=unit.name,
        contact_name=contact[0],
        contact_phone=contact[1],
        day=day,
        campaign_name=campaign.name,
        period_label=period_label(period),
        computed_at=unit.computed_at,
    )
    units = sheet_units(sheet_child_rows(rows, unit, all_schools=all_schools))
    sheet = StatisticsSheet(heading=heading, units=units, total=unit, feedback=feedback)
    return statistics_sheet_write(sheet, filename=sheet_filename(unit, period, day))


# --- the row generator -----------------------------------------------------------------------


HEADER, UNIT, TOTAL = "header", "unit", "total"


def statistics_sheet_rows(
    columns: Sequence[Column], units: Sequence[SheetUnit | UnitStatistics], total: UnitStatistics
) -> Iterator[tuple[str, list]]:
    """(kind, values): the header, one row per unit, then 合计 — the exporting unit's own stored
    row, so its rates are its own and not a sum of the rates above."""
    yield HEADER, [column.label for column in columns]
    for unit in units:
        yield UNIT, [column.value(unit) for column in columns]
    yield TOTAL, [TOTAL_LABEL, *(column.value(total) for column in columns[1:])]


# --- the writer ------------------------------------------------------------------------------


def statistics_sheet_write(sheet: StatisticsSheet, *, filename: str) -> ExportFile:
    """Write both sheets to a temporary XLSX file with XlsxWriter. Its cells are held in memory
    until the workbook closes (the merged two-row header is written out of row order, which the
    constant-memory mode cannot do): 1,500 schools are about 60,000 cells."""
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response (or the caller) closes it
    try:
        workbook = xlsxwriter.Workbook(target, WORKBOOK_OPTIONS)
        formats = _Formats(workbook)
        _write_table(
            _Sheet(workbook.add_worksheet(MAIN_SHEET_TITLE, _PrintedWorksheet), formats),
            title=TITLE,
            heading=sheet.heading,
            columns=MAIN_COLUMNS,
            rows=statistics_sheet_rows(MAIN_COLUMNS, sheet.units, sheet.total),
            notes=MAIN_NOTES,
        )
        _write_table(
            _Sheet(workbook.add_worksheet(OTHER_SHEET_TITLE, _PrintedWorksheet), formats),
            title=f"{TITLE}（{OTHER_SHEET_TITLE}）",
            heading=sheet.heading,
            columns=OTHER_COLUMNS,
            rows=statistics_sheet_rows(OTHER_COLUMNS, sheet.units, sheet.total),
            notes=OTHER_NOTES,
            extra_title=FEEDBACK_TABLE_TITLE if sheet.feedback else "",
            extra_rows=sheet.feedback,
        )
        workbook.close()
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=len(sheet.units))


# Nothing is guessed from text: a name that looks like a formula, a number or a web address stays
# text. The parts are zipped from memory, not from temporary files.
WORKBOOK_OPTIONS = {
    "in_memory": True,
    "strings_to_formulas": False,
    "strings_to_numbers": False,
    "strings_to_urls": False,
}


class _PrintedWorksheet(Worksheet):
    """An XlsxWriter worksheet that states ``fitToWidth="1"`` in its page setup. XlsxWriter leaves
    the attribute out when it is 1, the schema's default (ECMA-376 Part 1, §18.3.1.63): Excel,
    LibreOffice and WPS read it so, but a reader that does not apply schema defaults (openpyxl
    reads ``None``) sees no width to fit. Written through ``add_worksheet``'s ``worksheet_class``;
    it hooks XlsxWriter's ``_write_page_setup`` (checked against 3.3.1, the pinned version)."""

    def _write_page_setup(self) -> None:
        if not (self.fit_page and self.fit_width == 1):
            super()._write_page_setup()
            return
        empty_tag = self._xml_empty_tag

        def with_fit_to_width(tag: str, attributes: list | None = None) -> None:
            if tag == "pageSetup":
                attributes = [*(attributes or []), ("fitToWidth", 1)]
            empty_tag(tag, attributes)

        self._xml_empty_tag = with_fit_to_width
        try:
            super()._write_page_setup()
        finally:
            del self._xml_empty_tag


class _Formats:
    """The workbook's cell formats: one XlsxWriter ``Format`` per ``_STYLES`` entry, made once per
    workbook and shared by every cell of that style; the quote-prefixed twin of a style (for
    formula-like text, see the module's docstring) is made the first time a cell needs it."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self._workbook = workbook
        self.plain = [workbook.add_format(properties) for properties in _STYLES]
        self._quoted: dict[int, Format] = {}

    def of_text(self, text: str, style: int) -> Format:
        """The format of a text cell of ``style``: its quote-prefixed twin when the text starts
        like a formula."""
        if not text.startswith(FORMULA_PREFIXES):
            return self.plain[style]
        if style not in self._quoted:
            self._quoted[style] = self._workbook.add_format({**_STYLES[style], "quote_prefix": True})
        return self._quoted[style]


def _text(value: str) -> str:
    """Text as a cell holds it: the control characters XML cannot carry dropped (XlsxWriter would
    write them escaped as ``_xHHHH_``, which shows as such)."""
    return ILLEGAL_CHARACTERS_RE.sub("", value) if ILLEGAL_CHARACTERS_RE.search(value) else value


class _Sheet:
    """An XlsxWriter worksheet filled top to bottom. Rows are numbered from 1 as the sheet shows
    them; ``row_count`` is the last one written."""

    def __init__(self, worksheet: Worksheet, formats: _Formats) -> None:
        self.worksheet = worksheet
        self.formats = formats
        self.row_count = 0

    def next_row(self, *, height: float | None = None) -> int:
        """Start the next row (``height`` in points) and return its number."""
        self.row_count += 1
        if height is not None:
            self.worksheet.set_row(self.row_count - 1, height)
        return self.row_count

    def append(self, cells: Sequence[tuple[object, int]], *, height: float | None = None) -> int:
        """The next row: ``(value, style)`` per column from A. Returns the row's number."""
        row = self.next_row(height=height)
        for column, (value, style) in enumerate(cells):
            self.write(row, column + 1, value, style)
        return row

    def write(self, row: int, column: int, value: object, style: int) -> None:
        """One cell (1-based): text always as a string cell (never a formula), numbers as numbers,
        ``None`` or ``""`` as an empty cell of the style."""
        if value is None or value == "":
            self.worksheet.write_blank(row - 1, column - 1, None, self.formats.plain[style])
        elif isinstance(value, str):
            text = _text(value)
            self.worksheet.write_string(row - 1, column - 1, text, self.formats.of_text(text, style))
        elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            self.worksheet.write_number(row - 1, column - 1, value, self.formats.plain[style])
        else:
            raise TypeError(f"cannot write {type(value).__name__} to the sheet: {value!r}")

    def merge(self, first_row: int, first_column: int, last_row: int, last_column: int, text: str, style: int) -> None:
        """Text over a block of cells (1-based, inclusive): XlsxWriter writes it in the top-left
        cell and fills the rest with empty cells of the same format, so a border runs round the
        block."""
        text = _text(text)
        self.worksheet.merge_range(
            first_row - 1, first_column - 1, last_row - 1, last_column - 1, text, self.formats.of_text(text, style)
        )


def _write_table(
    ws: _Sheet,
    *,
    title: str,
    heading: SheetHeading,
    columns: Sequence[Column],
    rows: Iterator[tuple[str, list]],
    notes: Sequence[str],
    extra_title: str = "",
    extra_rows: Sequence[Sequence] = (),
) -> None:
    """Title, heading lines, the table under a header repeated on every printed page, the notes,
    then an optional small table (``extra_rows``, header first) under ``extra_title``."""
    widths = [column.width for column in columns]
    count = len(columns)
    grouped = any(GROUP_SEPARATOR in column.label for column in columns)
    header_rows = 2 if grouped else 1
    first_data_row = HEADER_ROW + header_rows
    _page_setup(ws.worksheet, widths=widths, first_data_row=first_data_row)

    # 1: the title across the table.
    row = ws.next_row(height=32)
    ws.merge(row, 1, row, count, title, _Style.TITLE)
    # 2: 报送单位 over the first column, then 联系人, 电话 and the date over a third of the rest each.
    day = heading.day
    rest = count - 1
    _append_spread(
        ws,
        texts=[
            f"报送单位：{heading.unit_name}",
            f"联系人：{heading.contact_name}",
            f"电话：{heading.contact_phone}",
            f"{day.year} 年 {day.month} 月 {day.day} 日",
        ],
        spans=[1, *(rest // 3 + (1 if index >= 3 - rest % 3 else 0) for index in range(3))],
    )
    # 3: the campaign and period; when the figures were computed, over enough columns on the right.
    computed = timezone.localtime(heading.computed_at).strftime(COMPUTED_AT_FORMAT)
    right = next(n for n in range(1, count + 1) if sum(widths[-n:]) >= 27 or n == count)
    _append_spread(
        ws,
        texts=[f"{heading.campaign_name}　统计期间：{heading.period_label}", f"数据计算于 {computed}"],
        spans=[count - right, right],
    )
    # 4…: the table.
    is_rate = [column.is_rate for column in columns]
    for kind, values in rows:
        if kind == HEADER:
            _append_header(ws, values, two_rows=grouped)
            continue
        _append_figures(ws, is_rate, values, total=kind == TOTAL)
    # The definitions as a note under the table, one merged line each, tall enough to print whole.
    ws.next_row()
    chars_per_line = sum(widths) / 2  # a CJK character is about two width units
    for index, note in enumerate(notes):
        lines = max(1, math.ceil(display_width(note) / 2 / chars_per_line))
        row = ws.next_row(height=16 * lines + 2)
        ws.merge(row, 1, row, count, note, _Style.NOTE_TITLE if index == 0 else _Style.NOTE)
    if extra_rows:
        ws.next_row()
        row = ws.next_row()
        ws.merge(row, 1, row, count, extra_title, _Style.NOTE_TITLE)
        for index, values in enumerate(extra_rows):
            if index == 0:
                ws.append([(str(label), _Style.HEADER) for label in values])
                continue
            total = values[0] == TOTAL_LABEL
            text_style = _Style.TOTAL_TEXT if total else _Style.TEXT
            number_style = _Style.TOTAL_NUMBER if total else _Style.NUMBER
            ws.append([(value, text_style if isinstance(value, str) else number_style) for value in values])
    ws.worksheet.print_area(0, 0, ws.row_count - 1, count - 1)


def _page_setup(worksheet: Worksheet, *, widths: Sequence[float], first_data_row: int) -> None:
    """A4 landscape, one page wide and as many down as the rows need, centred, the header rows
    repeated on every page, the page number in the footer; the unit column and the header frozen."""
    for index, width in enumerate(widths):
        # In pixels (7 to a character of the default font): XlsxWriter stores the width as given,
        # where its ``set_column`` would add Excel's cell padding (28 → 28.71).
        worksheet.set_column_pixels(index, index, round(width * PIXELS_PER_CHARACTER))
    worksheet.set_landscape()
    worksheet.set_paper(PAPER_A4)
    worksheet.fit_to_pages(1, 0)
    worksheet.center_horizontally()
    # Left and right 0.5 in; top and bottom 1 in, room for the page-number footer.
    worksheet.set_margins(left=0.5, right=0.5, top=1.0, bottom=1.0)
    worksheet.set_header("", {"margin": 0.5})
    worksheet.set_footer("&C第 &P 页，共 &N 页", {"margin": 0.5})
    worksheet.repeat_rows(HEADER_ROW - 1, first_data_row - 2)
    worksheet.freeze_panes(first_data_row - 1, 1)


PAPER_A4 = 9
PIXELS_PER_CHARACTER = 7  # the widest digit of Calibri 11, Excel's unit of column width


def _append_figures(ws: _Sheet, is_rate: Sequence[bool], values: list, *, total: bool) -> None:
    """A unit's row (or 合计): the name as text, figures as numbers, a rate as the fraction shown
    0.0% (「—」 in the number style when it has no denominator). ``is_rate`` flags the columns."""
    text, number, rate = _TOTAL_STYLES if total else _UNIT_STYLES
    number_format, rate_format = ws.formats.plain[number], ws.formats.plain[rate]
    write_number = ws.worksheet.write_number
    row = ws.next_row()
    ws.write(row, 1, values[0], text)
    for index in range(1, len(values)):
        value = values[index]
        if is_rate[index]:
            if value is None:
                ws.write(row, index + 1, NO_RATE, number)
            else:
                write_number(row - 1, index, _fraction(value), rate_format)
        elif type(value) is int:
            write_number(row - 1, index, value, number_format)
        else:
            ws.write(row, index + 1, value, number)


def _append_header(ws: _Sheet, labels: Sequence[str], *, two_rows: bool) -> None:
    """The column header. With two rows, "group·column" labels put a merged group heading over the
    columns of the group, and a label without a group spans both rows."""
    if not two_rows:
        ws.append([(label, _Style.HEADER) for label in labels], height=36)
        return
    top = ws.next_row(height=32)
    bottom = ws.next_row(height=46)
    parts = [label.split(GROUP_SEPARATOR, 1) for label in labels]
    index = 0
    while index < len(parts):
        column = index + 1
        group = parts[index][0]
        if len(parts[index]) == 1:
            ws.merge(top, column, bottom, column, group, _Style.HEADER)
            index += 1
            continue
        end = index
        while end + 1 < len(parts) and len(parts[end + 1]) == 2 and parts[end + 1][0] == group:
            end += 1
        if end > index:
            ws.merge(top, column, top, end + 1, group, _Style.HEADER)
        else:
            ws.write(top, column, group, _Style.HEADER)
        for position in range(index, end + 1):
            ws.write(bottom, position + 1, parts[position][1], _Style.HEADER)
        index = end + 1


def _append_spread(ws: _Sheet, *, texts: Sequence[str], spans: Sequence[int]) -> None:
    """One row of texts, each merged over its span of columns, the last one aligned right."""
    row = ws.next_row(height=22)
    column = 1
    for index, (text, span) in enumerate(zip(texts, spans, strict=True)):
        style = _Style.LINE_RIGHT if index == len(texts) - 1 else _Style.LINE
        if span > 1:
            ws.merge(row, column, row, column + span - 1, text, style)
        else:
            ws.write(row, column, text, style)
        column += span


# (text, number, rate) styles of a unit's row and of the 合计 row.
_UNIT_STYLES = (_Style.TEXT, _Style.NUMBER, _Style.RATE)
_TOTAL_STYLES = (_Style.TOTAL_TEXT, _Style.TOTAL_NUMBER, _Style.TOTAL_RATE)


def _fraction(percentage: Decimal | float) -> float:
    """The stored percentage, already rounded to one decimal, as the fraction a cell formatted
    0.0% shows as 87.5% (a rate is written as a number a spreadsheet can sort; 「—」 when it has
    no denominator)."""
    return float(Decimal(percentage) / 100)
