"""The bureau's statistics sheet, 「万名教师大家访」活动情况统计表 (DESIGN §7), as XLSX.

One row generator (``statistics_sheet_rows``) yields the header, one row per unit below the
exporting one, then the 合计 row; one writer (``statistics_sheet_write``) lays those rows out on a
printable A4 landscape page under the title and the 报送单位 / 联系人 / 电话 / 年 月 日 line, with the
definitions as a note. The same generator, with other columns, fills the second sheet 「其他指标」.

Every figure comes from stored ``UnitStatistics`` rows: the 合计 row is the exporting unit's own row,
never a sum of the rows above it (and rates are never added up). Nothing here reads the visit table.

Formula neutralisation: a text cell that starts with ``= + - @`` (or a tab or carriage return) is
written as a string cell (never a formula cell) with the *quote prefix* style
(``cell.quotePrefix``), the flag a spreadsheet sets when someone types a leading apostrophe, so that
it stays text when the cell is edited. The text shows unchanged: a phone number “+86 …” or a name
stays readable on paper. Unlike ``schools.exports.neutralise``, no apostrophe is added to the value,
because this sheet is printed and handed on.
"""

import datetime
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

import openpyxl
from django.db.models import QuerySet
from django.utils import timezone
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from ledgers.models import Level, UnitStatistics
from ledgers.selectors import Period
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
    """Names of the workbook's cell styles. Each is registered once per workbook as a named style,
    so that a cell takes its style by name (a copy of a few integers) instead of having its font,
    fill, border and alignment looked up again for each of tens of thousands of cells."""

    TITLE = "统计表-标题"
    LINE = "统计表-表头信息"
    LINE_RIGHT = "统计表-表头信息（右）"
    HEADER = "统计表-栏目"
    TEXT = "统计表-单位"
    NUMBER = "统计表-数字"
    RATE = "统计表-比率"
    TOTAL_TEXT = "统计表-合计单位"
    TOTAL_NUMBER = "统计表-合计数字"
    TOTAL_RATE = "统计表-合计比率"
    NOTE_TITLE = "统计表-说明标题"
    NOTE = "统计表-说明"


def _named_styles() -> list[NamedStyle]:
    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    bold = Font(bold=True)
    center = Alignment(horizontal="center", vertical="center", wrap_text=True)
    left = Alignment(horizontal="left", vertical="center", wrap_text=True)
    note = Alignment(horizontal="left", vertical="top", wrap_text=True)
    header_fill = PatternFill(fill_type="solid", start_color="DDEBF7", end_color="DDEBF7")
    total_fill = PatternFill(fill_type="solid", start_color="F2F2F2", end_color="F2F2F2")
    return [
        NamedStyle(_Style.TITLE, font=Font(bold=True, size=16), alignment=center),
        # Heading lines shrink rather than spill or clip when a name is long.
        NamedStyle(_Style.LINE, alignment=Alignment(horizontal="left", vertical="center", shrink_to_fit=True)),
        NamedStyle(_Style.LINE_RIGHT, alignment=Alignment(horizontal="right", vertical="center", shrink_to_fit=True)),
        NamedStyle(_Style.HEADER, font=bold, fill=header_fill, alignment=center, border=border),
        NamedStyle(_Style.TEXT, alignment=left, border=border),
        NamedStyle(_Style.NUMBER, alignment=center, border=border),
        NamedStyle(_Style.RATE, alignment=center, border=border, number_format=RATE_FORMAT),
        NamedStyle(_Style.TOTAL_TEXT, font=bold, fill=total_fill, alignment=left, border=border),
        NamedStyle(_Style.TOTAL_NUMBER, font=bold, fill=total_fill, alignment=center, border=border),
        NamedStyle(
            _Style.TOTAL_RATE, font=bold, fill=total_fill, alignment=center, border=border, number_format=RATE_FORMAT
        ),
        NamedStyle(_Style.NOTE_TITLE, font=bold, alignment=note),
        NamedStyle(_Style.NOTE, alignment=note),
    ]


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
    Column("孤儿和事实无人抚养儿童", attrgetter("care_students"), 10),
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
    f"5. 分母为 0 时比率显示「{NO_RATE}」。{TOTAL_LABEL}行是本单位自身的统计数，不是上面各行相加。",
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
    units: Sequence[UnitStatistics]
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
    units = list(sheet_child_rows(rows, unit, all_schools=all_schools))
    sheet = StatisticsSheet(heading=heading, units=units, total=unit, feedback=feedback)
    return statistics_sheet_write(sheet, filename=sheet_filename(unit, period, day))


# --- the row generator -----------------------------------------------------------------------


HEADER, UNIT, TOTAL = "header", "unit", "total"


def statistics_sheet_rows(
    columns: Sequence[Column], units: Sequence[UnitStatistics], total: UnitStatistics
) -> Iterator[tuple[str, list]]:
    """(kind, values): the header, one row per unit, then 合计 — the exporting unit's own stored
    row, so its rates are its own and not a sum of the rates above."""
    yield HEADER, [column.label for column in columns]
    for unit in units:
        yield UNIT, [column.value(unit) for column in columns]
    yield TOTAL, [TOTAL_LABEL, *(column.value(total) for column in columns[1:])]


# --- the writer ------------------------------------------------------------------------------


def statistics_sheet_write(sheet: StatisticsSheet, *, filename: str) -> ExportFile:
    """Write both sheets to a temporary XLSX file (openpyxl write-only mode: rows stream to disk)."""
    workbook = openpyxl.Workbook(write_only=True)
    for style in _named_styles():
        workbook.add_named_style(style)
    _write_table(
        workbook.create_sheet(MAIN_SHEET_TITLE),
        title=TITLE,
        heading=sheet.heading,
        columns=MAIN_COLUMNS,
        rows=statistics_sheet_rows(MAIN_COLUMNS, sheet.units, sheet.total),
        notes=MAIN_NOTES,
    )
    _write_table(
        workbook.create_sheet(OTHER_SHEET_TITLE),
        title=f"{TITLE}（{OTHER_SHEET_TITLE}）",
        heading=sheet.heading,
        columns=OTHER_COLUMNS,
        rows=statistics_sheet_rows(OTHER_COLUMNS, sheet.units, sheet.total),
        notes=OTHER_NOTES,
        extra_title=FEEDBACK_TABLE_TITLE if sheet.feedback else "",
        extra_rows=sheet.feedback,
    )
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response (or the caller) closes it
    try:
        workbook.save(target)
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=len(sheet.units))


def _write_table(
    ws: WriteOnlyWorksheet,
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
    last = get_column_letter(len(columns))
    grouped = any(GROUP_SEPARATOR in column.label for column in columns)
    header_rows = 2 if grouped else 1
    first_data_row = HEADER_ROW + header_rows
    # A write-only sheet takes its layout before the first row.
    for index, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.page_setup.orientation = Worksheet.ORIENTATION_LANDSCAPE
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as the rows need
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.5
    # Top and bottom keep openpyxl's 0.75 in, room for the page-number footer.
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"
    ws.print_title_rows = f"{HEADER_ROW}:{first_data_row - 1}"
    ws.freeze_panes = f"B{first_data_row}"

    # 1: the title across the table.
    ws.row_dimensions[1].height = 32
    ws.append([_cell(ws, title, _Style.TITLE)])
    ws.merged_cells.add(f"A1:{last}1")
    # 2: 报送单位 over the first column, then 联系人, 电话 and the date over a third of the rest each.
    day = heading.day
    rest = len(columns) - 1
    ws.row_dimensions[2].height = 22
    _append_spread(
        ws,
        row=2,
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
    right = next(count for count in range(1, len(widths) + 1) if sum(widths[-count:]) >= 27 or count == len(widths))
    ws.row_dimensions[3].height = 22
    _append_spread(
        ws,
        row=3,
        texts=[f"{heading.campaign_name}　统计期间：{heading.period_label}", f"数据计算于 {computed}"],
        spans=[len(columns) - right, right],
    )
    # 4…: the table.
    row_number = HEADER_ROW
    for kind, values in rows:
        if kind == HEADER:
            _append_header(ws, values, two_rows=grouped)
            row_number += header_rows
            continue
        total = kind == TOTAL
        ws.append([_value_cell(ws, column, value, total=total) for column, value in zip(columns, values, strict=True)])
        row_number += 1
    # The definitions as a note under the table, one merged line each, tall enough to print whole.
    ws.append([])
    row_number += 1
    chars_per_line = sum(widths) / 2  # a CJK character is about two width units
    for index, note in enumerate(notes):
        lines = max(1, math.ceil(display_width(note) / 2 / chars_per_line))
        ws.row_dimensions[row_number].height = 16 * lines + 2
        ws.append([_cell(ws, note, _Style.NOTE_TITLE if index == 0 else _Style.NOTE)])
        ws.merged_cells.add(f"A{row_number}:{last}{row_number}")
        row_number += 1
    if extra_rows:
        ws.append([])
        ws.append([_cell(ws, extra_title, _Style.NOTE_TITLE)])
        ws.merged_cells.add(f"A{row_number + 1}:{last}{row_number + 1}")
        row_number += 2
        for index, values in enumerate(extra_rows):
            if index == 0:
                ws.append([_cell(ws, str(label), _Style.HEADER) for label in values])
            else:
                ws.append(
                    [
                        _cell(ws, value, _Style.TOTAL_TEXT if values[0] == TOTAL_LABEL else _Style.TEXT)
                        if isinstance(value, str)
                        else _number_cell(ws, value, total=values[0] == TOTAL_LABEL)
                        for value in values
                    ]
                )
            row_number += 1
    ws.print_area = f"A1:{last}{row_number - 1}"


def _number_cell(ws: WriteOnlyWorksheet, value: object, *, total: bool) -> Cell:
    cell = WriteOnlyCell(ws, value=value)
    cell.style = _Style.TOTAL_NUMBER if total else _Style.NUMBER
    return cell


def _append_header(ws: WriteOnlyWorksheet, labels: Sequence[str], *, two_rows: bool) -> None:
    """The column header. With two rows, "group·column" labels put a merged group heading over the
    columns of the group, and a label without a group spans both rows."""
    if not two_rows:
        ws.row_dimensions[HEADER_ROW].height = 36
        ws.append([_cell(ws, label, _Style.HEADER) for label in labels])
        return
    top: list[Cell] = []
    bottom: list[Cell] = []
    parts = [label.split(GROUP_SEPARATOR, 1) for label in labels]
    index = 0
    while index < len(parts):
        group = parts[index][0]
        if len(parts[index]) == 1:
            top.append(_cell(ws, group, _Style.HEADER))
            bottom.append(_cell(ws, "", _Style.HEADER))
            letter = get_column_letter(index + 1)
            ws.merged_cells.add(f"{letter}{HEADER_ROW}:{letter}{HEADER_ROW + 1}")
            index += 1
            continue
        end = index
        while end + 1 < len(parts) and len(parts[end + 1]) == 2 and parts[end + 1][0] == group:
            end += 1
        for position in range(index, end + 1):
            top.append(_cell(ws, group if position == index else "", _Style.HEADER))
            bottom.append(_cell(ws, parts[position][1], _Style.HEADER))
        if end > index:
            ws.merged_cells.add(f"{get_column_letter(index + 1)}{HEADER_ROW}:{get_column_letter(end + 1)}{HEADER_ROW}")
        index = end + 1
    ws.row_dimensions[HEADER_ROW].height = 32
    ws.row_dimensions[HEADER_ROW + 1].height = 46
    ws.append(top)
    ws.append(bottom)


def _append_spread(ws: WriteOnlyWorksheet, *, row: int, texts: Sequence[str], spans: Sequence[int]) -> None:
    """One row of texts, each merged over its span of columns, the last one aligned right."""
    values: list = []
    column = 1
    for index, (text, span) in enumerate(zip(texts, spans, strict=True)):
        values.append(_cell(ws, text, _Style.LINE_RIGHT if index == len(texts) - 1 else _Style.LINE))
        values.extend([None] * (span - 1))
        if span > 1:
            ws.merged_cells.add(f"{get_column_letter(column)}{row}:{get_column_letter(column + span - 1)}{row}")
        column += span
    ws.append(values)


def _value_cell(ws: WriteOnlyWorksheet, column: Column, value: object, *, total: bool) -> Cell:
    if column.is_rate and value is not None:
        # The stored percentage, already rounded to one decimal, as a fraction shown as 87.5%.
        cell = WriteOnlyCell(ws, value=float(Decimal(value) / 100))
        cell.style = _Style.TOTAL_RATE if total else _Style.RATE
        return cell
    if column.is_rate:
        return _cell(ws, NO_RATE, _Style.TOTAL_NUMBER if total else _Style.NUMBER)
    if isinstance(value, str):
        return _cell(ws, value, _Style.TOTAL_TEXT if total else _Style.TEXT)
    cell = WriteOnlyCell(ws, value=value)
    cell.style = _Style.TOTAL_NUMBER if total else _Style.NUMBER
    return cell


def _cell(ws: WriteOnlyWorksheet, text: str, style: str) -> Cell:
    """A text cell: control characters XLSX cannot hold dropped, formula-like text kept as text
    (a string cell with the quote prefix, see the module's docstring)."""
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    cell = WriteOnlyCell(ws, value=text)
    cell.style = style
    if text.startswith(FORMULA_PREFIXES):
        cell.data_type = "s"  # openpyxl takes a leading "=" for a formula
        cell.quotePrefix = True
    return cell
