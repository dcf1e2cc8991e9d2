"""The one export layer (STYLE.md "Exports"). An export is a row generator whose first item is the
header and every later item a row; ``write_xlsx`` or ``write_csv`` turns it into a file.

Rows are streamed to a temporary file on disk (XlsxWriter's constant-memory mode for XLSX), never built whole
in memory, and every text cell that a spreadsheet would read as a formula is neutralised.
"""

import contextlib
import copy
import csv
import datetime
import io
import itertools
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

import openpyxl
import rustpy_xlsxwriter
from django.http import FileResponse
from django.utils import timezone
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"

# A text cell starting with one of these is run as a formula (or DDE) by Excel, WPS and LibreOffice.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
MIN_WIDTH = 8
MAX_WIDTH = 50

# The header row's look (XlsxWriter format properties): bold, light blue, centred, thin grey borders.
HEADER_FORMAT = {
    "bold": True,
    "bg_color": "#DDEBF7",
    "pattern": 1,
    "align": "center",
    "valign": "vcenter",
    "text_wrap": True,
    "border": 1,
    "border_color": "#808080",
}


@dataclass
class ExportFile:
    """A finished export in a temporary file, deleted when the file is closed (the response does)."""

    file: IO[bytes]
    filename: str
    content_type: str
    rows: int  # data rows written, the header not counted

    def response(self) -> FileResponse:
        self.file.seek(0)
        return FileResponse(self.file, as_attachment=True, filename=self.filename, content_type=self.content_type)


def neutralise(value: object) -> object:
    """Keep a text cell that starts like a formula from being run by the spreadsheet that opens it;
    drop the control characters that XLSX cannot hold. Other values pass unchanged."""
    if not isinstance(value, str):
        return value
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return f"'{value}" if value.startswith(FORMULA_PREFIXES) else value


def write_xlsx(
    rows: Iterable[Sequence],
    *,
    filename: str,
    sheet_title: str = "Sheet1",
    widths: Sequence[float | None] | None = None,
) -> ExportFile:
    """Write the rows to a one-sheet workbook: a styled header row frozen at the top (and repeated
    on every printed page), columns as wide as ``widths`` says or else as their header needs. (A
    ledger in the 台账 layout goes through ``write_ledger_workbook``.)

    Written by rust_xlsxwriter (through rustpy-xlsxwriter) in constant-memory mode: rows go to
    disk as they come, strings inline, no style per cell. On the visit export's 100,000 rows (1.9
    million cells) it takes 3.5 s of CPU where XlsxWriter took 25 s and openpyxl's write-only mode
    more (docs/benchmarks.md, "Exports: which writer"). Header labels must be distinct (a row goes
    to the writer as a mapping from label to value). Values: str (neutralised, written as a string
    cell, never a formula; cut at Excel's 32,767 characters), int, float, Decimal, bool, date,
    datetime (aware ones in local time), None (an empty cell); anything else raises TypeError.
    A column holding dates and no times in its first ``_SNIFF_ROWS`` rows shows dates as
    yyyy-mm-dd; any other date or time is shown with its time."""
    rows = iter(rows)
    header = [neutralise(str(label)) for label in next(rows)]
    if len(set(header)) != len(header):
        raise ValueError(f"duplicate column labels: {header}")
    local = timezone.get_current_timezone()
    leading = [_xlsx_row(row, header, local) for row in itertools.islice(rows, _SNIFF_ROWS)]
    kinds: dict[str, set[type]] = {}
    for row in leading:
        for label, value in row.items():
            if isinstance(value, datetime.date):
                kinds.setdefault(label, set()).add(type(value))
    date_columns = [label for label, found in kinds.items() if found == {datetime.date}]
    count = {"rows": 0}

    def records() -> Iterator[dict]:
        for row in itertools.chain(leading, (_xlsx_row(row, header, local) for row in rows)):
            count["rows"] += 1
            yield row
        if not count["rows"]:
            yield dict.fromkeys(header)  # an empty row: the header alone is written

    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response closes it
    try:
        rustpy_xlsxwriter.write_worksheet(
            records(),
            target,
            sheet_name=sheet_title[:31],
            freeze_row=1,
            datetime_format=DATETIME_FORMAT,
            column_widths=[
                (widths[index] if widths is not None and index < len(widths) else None) or _header_width(label)
                for index, label in enumerate(header)
            ],
            column_formats={label: rustpy_xlsxwriter.Format().set_num_format(DATE_FORMAT) for label in date_columns},
            header_format=_rust_header_format(),
            page_setup={"repeat_rows": 0},
        )
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=count["rows"])


_SNIFF_ROWS = 200
EXCEL_MAX_TEXT = 32_767


def _rust_header_format() -> "rustpy_xlsxwriter.Format":
    """HEADER_FORMAT for rust_xlsxwriter."""
    return (
        rustpy_xlsxwriter.Format()
        .set_bold()
        .set_background_color(HEADER_FORMAT["bg_color"])
        .set_pattern("solid")
        .set_align("center")
        .set_align("vcenter")
        .set_text_wrap()
        .set_border("thin")
        .set_border_color(HEADER_FORMAT["border_color"])
    )


def _xlsx_plain(value: object, local: datetime.tzinfo) -> object:
    """A value of a subclass of the written types (a TextChoices member, a SafeString, an IntEnum,
    a datetime subclass) as the plain value ``_xlsx_row`` writes."""
    if isinstance(value, str):
        return neutralise(str.__str__(value))[:EXCEL_MAX_TEXT]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime.datetime):
        plain = datetime.datetime.combine(value.date(), value.timetz())  # a plain datetime
        return plain.astimezone(local).replace(tzinfo=None) if plain.tzinfo is not None else plain
    if isinstance(value, datetime.date):
        return datetime.date(value.year, value.month, value.day)
    raise TypeError(f"cannot write {type(value).__name__} to XLSX: {value!r}")


def _xlsx_row(values: Sequence, header: list[str], local: datetime.tzinfo) -> dict:
    """One row as the writer takes it: {label: value}, text neutralised, aware times made local."""
    row = {}
    for label, value in zip(header, values, strict=False):
        kind = type(value)
        if kind is str:
            value = neutralise(value)[:EXCEL_MAX_TEXT]
        elif kind is datetime.datetime:
            if value.tzinfo is not None:
                value = value.astimezone(local).replace(tzinfo=None)
        elif kind is Decimal:
            value = float(value)
        elif not (value is None or kind in (int, float, bool, datetime.date)):
            value = _xlsx_plain(value, local)
        row[label] = value
    return row


@dataclass(frozen=True)
class LedgerHeading:
    """What a ledger (台账, DESIGN §6) says above its table: its title and the line
    填报单位 / 填报人 / 电话 / 日期 (``day`` None: today)."""

    title: str
    unit: str  # 填报单位
    filled_by: str = ""  # 填报人
    phone: str = ""  # 电话
    day: datetime.date | None = None  # 日期


@dataclass
class LedgerSheet:
    """One sheet of a ledger: its tab name, an optional line under the heading (e.g. the class and
    its head teacher), and a row generator whose first item is the header. The writer puts 序号
    in front of every row itself."""

    name: str
    rows: Iterable[Sequence]
    widths: Sequence[float | None] | None = None
    subtitle: str = ""


class _LedgerStyle:
    """Named styles registered once per workbook: a data cell takes its style by name."""

    TITLE = "台账-标题"
    LINE = "台账-表头信息"
    HEADER = "台账-栏目"
    CELL = "台账-单元格"
    DATE = "台账-日期"
    DATETIME = "台账-时间"
    FOOT = "台账-审核"


def _ledger_styles() -> list[NamedStyle]:
    border = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
    cell = Alignment(vertical="center", wrap_text=True)
    return [
        NamedStyle(_LedgerStyle.TITLE, font=Font(bold=True, size=16), alignment=Alignment(horizontal="center")),
        NamedStyle(_LedgerStyle.LINE, alignment=Alignment(horizontal="left", vertical="center")),
        NamedStyle(_LedgerStyle.HEADER, font=HEADER_FONT, fill=HEADER_FILL, alignment=HEADER_ALIGNMENT, border=border),
        NamedStyle(_LedgerStyle.CELL, alignment=cell, border=border),
        NamedStyle(_LedgerStyle.DATE, alignment=cell, border=border, number_format=DATE_FORMAT),
        NamedStyle(_LedgerStyle.DATETIME, alignment=cell, border=border, number_format=DATETIME_FORMAT),
        NamedStyle(_LedgerStyle.FOOT, alignment=Alignment(horizontal="left", vertical="center")),
    ]


LEDGER_INDEX_LABEL = "序号"
LEDGER_INDEX_WIDTH = 6
LEDGER_HEADER_ROW = 3  # title, the 填报单位 line, then the header (4 when the sheet has a subtitle)
LEDGER_PROGRESS_EVERY = 1000


def write_ledger_xlsx(
    rows: Iterable[Sequence],
    *,
    filename: str,
    heading: LedgerHeading,
    sheet_title: str = "台账",
    widths: Sequence[float | None] | None = None,
) -> ExportFile:
    """A one-sheet ledger in the 台账 layout (see ``write_ledger_workbook``)."""
    return write_ledger_workbook(
        [LedgerSheet(name=sheet_title, rows=rows, widths=widths)], heading=heading, filename=filename
    )


def write_ledger_workbook(
    sheets: Iterable[LedgerSheet],
    *,
    heading: LedgerHeading,
    filename: str,
    progress: Callable[[int], None] | None = None,
) -> ExportFile:
    """Write a ledger in the layout schools file (DESIGN §6): on each sheet the title, the line
    填报单位 / 填报人 / 电话 / 日期, an optional subtitle, the table with 序号 as its first column and
    its header repeated on every printed page, then an 审核人 line; A4 landscape, fitted to the
    page's width. Rows stream to disk (write-only workbook), so memory stays flat whatever the
    number of rows; a ``Marked`` value is written with its fill. ``progress`` is called with the
    data rows written so far every ``LEDGER_PROGRESS_EVERY`` rows (a Celery task's progress bar).
    Text is neutralised against formulas. ``ExportFile.rows`` counts data rows over all sheets."""
    workbook = openpyxl.Workbook(write_only=True)
    for style in _ledger_styles():
        workbook.add_named_style(style)
    day = heading.day or timezone.localdate()
    count = 0
    written_sheets = []
    try:
        for ledger_sheet in sheets:
            sheet = workbook.create_sheet(title=_sheet_name(ledger_sheet.name, written_sheets))
            written_sheets.append(sheet.title)
            count = _write_ledger_sheet(sheet, ledger_sheet, heading=heading, day=day, count=count, progress=progress)
        if not written_sheets:
            _write_ledger_sheet(
                workbook.create_sheet(title="台账"),  # an empty workbook is not a valid file
                LedgerSheet(name="台账", rows=[["（无数据）"]]),
                heading=heading,
                day=day,
                count=0,
                progress=None,
            )
    except BaseException:
        for sheet in workbook.worksheets:
            _discard_sheet(sheet)
        raise
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response closes it
    try:
        workbook.save(target)
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=count)


def _sheet_name(name: str, taken: list[str]) -> str:
    """A tab name Excel accepts (31 characters, none of []:*?/\\) and not yet used."""
    clean = "".join("_" if char in "[]:*?/\\" else char for char in name)[:31] or "Sheet"
    candidate, number = clean, 2
    while candidate in taken:
        suffix = f"({number})"
        candidate, number = clean[: 31 - len(suffix)] + suffix, number + 1
    return candidate


def _write_ledger_sheet(sheet, ledger: LedgerSheet, *, heading: LedgerHeading, day, count: int, progress) -> int:
    rows = iter(ledger.rows)
    header = [LEDGER_INDEX_LABEL, *(str(label) for label in next(rows))]
    widths = [LEDGER_INDEX_WIDTH, *(ledger.widths or [])]
    columns = len(header)
    last = get_column_letter(columns)
    header_row = LEDGER_HEADER_ROW + (1 if ledger.subtitle else 0)
    for index, label in enumerate(header):
        width = widths[index] if index < len(widths) and widths[index] else _header_width(label)
        sheet.column_dimensions[get_column_letter(index + 1)].width = width
    sheet.page_setup.orientation = Worksheet.ORIENTATION_LANDSCAPE
    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.oddFooter.center.text = "第 &P 页，共 &N 页"
    sheet.print_title_rows = f"{header_row}:{header_row}"
    sheet.freeze_panes = f"B{header_row + 1}"

    sheet.row_dimensions[1].height = 30
    sheet.append([_styled(sheet, heading.title, _LedgerStyle.TITLE)])
    sheet.merged_cells.add(f"A1:{last}1")
    sheet.append(
        [
            _styled(sheet, f"填报单位：{heading.unit}", _LedgerStyle.LINE),
            None,
            _styled(sheet, f"填报人：{heading.filled_by}", _LedgerStyle.LINE),
            None,
            _styled(sheet, f"电话：{heading.phone}", _LedgerStyle.LINE),
            None,
            _styled(sheet, f"日期：{day:%Y年%m月%d日}", _LedgerStyle.LINE),
        ]
    )
    if ledger.subtitle:
        sheet.append([_styled(sheet, ledger.subtitle, _LedgerStyle.LINE)])
        sheet.merged_cells.add(f"A3:{last}3")
    sheet.row_dimensions[header_row].height = 30
    sheet.append([_styled(sheet, label, _LedgerStyle.HEADER) for label in header])
    row_number = header_row
    cells = _LedgerCells(sheet)
    for number, row in enumerate(rows, start=1):
        sheet.append([cells.make(number), *(cells.make(value) for value in row)])
        row_number += 1
        count += 1
        if progress is not None and count % LEDGER_PROGRESS_EVERY == 0:
            progress(count)
    sheet.append([])
    sheet.append(
        [_styled(sheet, "审核人：", _LedgerStyle.FOOT), None, None, _styled(sheet, "审核日期：", _LedgerStyle.FOOT)]
    )
    row_number += 2
    sheet.print_area = f"A1:{last}{row_number}"
    return count


def _styled(sheet, text: str, style: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=neutralise(text))
    cell.style = style
    return cell


class _LedgerCells:
    """Makes a sheet's data cells. Each takes a copy of a prototype's style array (a few integers)
    rather than looking its named style up again: a third less time on a 100,000-row ledger."""

    def __init__(self, sheet) -> None:
        self.sheet = sheet
        self.styles = {}
        for name in (_LedgerStyle.CELL, _LedgerStyle.DATE, _LedgerStyle.DATETIME):
            prototype = WriteOnlyCell(sheet, value=None)
            prototype.style = name
            self.styles[name] = prototype._style

    def make(self, value: object) -> WriteOnlyCell:
        if isinstance(value, Marked):
            cell = self.make(value.value)
            cell.fill = PatternFill(fill_type="solid", start_color=value.fill, end_color=value.fill)
            cell.alignment = Alignment(horizontal="center", vertical="center")
            return cell
        if isinstance(value, datetime.datetime):
            if timezone.is_aware(value):
                value = timezone.localtime(value).replace(tzinfo=None)
            style = _LedgerStyle.DATETIME
        elif isinstance(value, datetime.date):
            style = _LedgerStyle.DATE
        else:
            value = neutralise(value)
            style = _LedgerStyle.CELL
        cell = WriteOnlyCell(self.sheet, value=value)
        cell._style = copy.copy(self.styles[style])
        return cell


def write_csv(rows: Iterable[Sequence], *, filename: str) -> ExportFile:
    """Write the rows as CSV in UTF-8 with a byte-order mark, so that Excel reads the Chinese right."""
    target = tempfile.TemporaryFile(suffix=".csv")  # noqa: SIM115 - the response closes it
    count = -1
    try:
        text = io.TextIOWrapper(target, encoding="utf-8-sig", newline="")
        writer = csv.writer(text)
        for row in rows:
            writer.writerow([_csv_value(value) for value in row])
            count += 1
        text.flush()
        text.detach()  # keep the binary file open for the response
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=CSV_CONTENT_TYPE, rows=max(count, 0))


def workbook_response(workbook: openpyxl.Workbook, *, filename: str) -> FileResponse:
    """A workbook built whole (a small styled template with comments) as a download."""
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response closes it
    try:
        workbook.save(target)
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=0).response()


def display_width(text: str) -> int:
    """Columns the text takes on a terminal or in Excel's width unit: a CJK character takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _header_width(label: str) -> float:
    return float(min(MAX_WIDTH, max(MIN_WIDTH, display_width(label) + 4)))


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return neutralise(value)


# --- the 台账 layout (DESIGN §6) -------------------------------------------------------------------

TITLE_FONT = Font(bold=True, size=16)
PAPER_A4 = "9"  # openpyxl's PAPERSIZE_A4


@dataclass(frozen=True)
class Marked:
    """A cell value with a fill colour (e.g. a missed day in the monthly care-log sheet)."""

    value: object
    fill: str  # RRGGBB


# --- openpyxl's write-only cells, for the 台账 layout (fills, merged title) -------------------------

_THIN = Side(style="thin", color="808080")
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill(fill_type="solid", start_color="DDEBF7", end_color="DDEBF7")
HEADER_ALIGNMENT = Alignment(horizontal="center", vertical="center", wrap_text=True)
HEADER_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


def _discard_sheet(sheet) -> None:
    """Close a write-only sheet that will not be saved and delete the XML file it streams rows to;
    openpyxl itself removes that file only on save or at process exit."""
    with contextlib.suppress(Exception):
        sheet.close()
        sheet._writer.cleanup()


def _header_cell(sheet, label: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=neutralise(label))
    cell.font = HEADER_FONT
    cell.fill = HEADER_FILL
    cell.alignment = HEADER_ALIGNMENT
    cell.border = HEADER_BORDER
    return cell


def _xlsx_value(sheet, value: object) -> object:
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value).replace(tzinfo=None)
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATETIME_FORMAT
        return cell
    if isinstance(value, datetime.date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATE_FORMAT
        return cell
    return neutralise(value)
