"""The one export layer (STYLE.md "Exports"). An export is a row generator whose first item is the
header and every later item a row; ``write_xlsx`` or ``write_csv`` turns it into a file.

Rows are streamed to a temporary file on disk (XlsxWriter's constant-memory mode for XLSX), never built whole
in memory, and every text cell that a spreadsheet would read as a formula is neutralised.
"""

import contextlib
import csv
import datetime
import io
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

import openpyxl
import xlsxwriter
from django.http import FileResponse
from django.utils import timezone
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

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
    on every printed page), columns as wide as ``widths`` says or else as their header needs.

    Written with XlsxWriter in constant-memory mode: each row goes to disk as it comes, strings
    inline, and a cell carries a format only when it is a date (one shared format object, not a
    style per cell). Measured against openpyxl's write-only mode on the visit export's rows: 0.16
    against 0.32 ms of CPU a row (0.20 with lxml); docs/benchmarks.md, "Exports: which writer".
    Values: str (neutralised, written as a string cell, never a formula), int, float, Decimal,
    bool, date, datetime (aware ones in local time), None (an empty cell); anything else raises
    TypeError."""
    rows = iter(rows)
    header = [str(label) for label in next(rows)]
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response closes it
    workbook = xlsxwriter.Workbook(
        target,
        {"constant_memory": True, "tmpdir": tempfile.gettempdir(), "strings_to_formulas": False},
    )
    sheet = workbook.add_worksheet(sheet_title[:31])
    header_format = workbook.add_format(HEADER_FORMAT)
    formats = {
        datetime.datetime: workbook.add_format({"num_format": DATETIME_FORMAT}),
        datetime.date: workbook.add_format({"num_format": DATE_FORMAT}),
    }
    for index, label in enumerate(header):
        width = widths[index] if widths is not None and index < len(widths) else None
        sheet.set_column(index, index, width or _header_width(label))
    sheet.freeze_panes(1, 0)
    if header:
        sheet.repeat_rows(0)
    count = 0
    try:
        for column, label in enumerate(header):
            sheet.write_string(0, column, neutralise(label), header_format)
        for count, row in enumerate(rows, start=1):  # noqa: B007 - the last count is the number of rows
            for column, value in enumerate(row):
                _xlsx_write(sheet, count, column, value, formats)
        workbook.close()
    except BaseException:
        _discard(workbook)
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=count)


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


def _discard(workbook: xlsxwriter.Workbook) -> None:
    """Close the temporary files of a workbook that will not be saved (XlsxWriter's constant-memory
    rows of each sheet); they are unlinked already, so closing them frees the disk."""
    for sheet in workbook.worksheets():
        handle = getattr(sheet, "row_data_fh", None)
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()


def display_width(text: str) -> int:
    """Columns the text takes on a terminal or in Excel's width unit: a CJK character takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _header_width(label: str) -> float:
    return float(min(MAX_WIDTH, max(MIN_WIDTH, display_width(label) + 4)))


def _xlsx_write(sheet, row: int, column: int, value: object, formats: dict) -> None:
    if value is None:
        return
    if isinstance(value, str):
        sheet.write_string(row, column, neutralise(value))
    elif isinstance(value, bool):
        sheet.write_boolean(row, column, value)
    elif isinstance(value, int | float | Decimal):
        sheet.write_number(row, column, value)
    elif isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value).replace(tzinfo=None)
        sheet.write_datetime(row, column, value, formats[datetime.datetime])
    elif isinstance(value, datetime.date):
        sheet.write_datetime(row, column, value, formats[datetime.date])
    else:
        raise TypeError(f"cannot write {type(value).__name__} to XLSX: {value!r}")


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


@dataclass(frozen=True)
class LedgerHeading:
    """The lines a school's 台账 carries above and below its table."""

    title: str
    unit: str  # 填报单位
    filled_by: str  # 填报人
    phone: str  # 电话
    day: datetime.date  # 日期


def write_ledger_xlsx(
    rows: Iterable[Sequence],
    *,
    filename: str,
    heading: LedgerHeading,
    sheet_title: str = "台账",
    widths: Sequence[float | None] | None = None,
) -> ExportFile:
    """Write a ledger in the layout schools file (DESIGN §6): the title, a 填报单位 / 填报人 / 电话 /
    日期 line, the table (the rows' first item is its header; 序号 is added as the first column), and
    an 审核人 line at the bottom; A4 landscape, the header repeated on every printed page. Streams
    like ``write_xlsx``; a ``Marked`` value is written with its fill."""
    rows = iter(rows)
    header = ["序号", *[str(label) for label in next(rows)]]
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = PAPER_A4
    sheet.page_setup.fitToWidth = 1
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToHeight = 0
    for index, label in enumerate(header):
        width = 6 if index == 0 else None
        if widths is not None and 0 < index <= len(widths):
            width = widths[index - 1] or width
        sheet.column_dimensions[get_column_letter(index + 1)].width = width or _header_width(label)
    last = get_column_letter(max(len(header), 1))
    sheet.merged_cells.add(f"A1:{last}1")
    sheet.print_title_rows = "3:3"
    sheet.freeze_panes = "B4"
    count = 0
    try:
        title = WriteOnlyCell(sheet, value=neutralise(heading.title))
        title.font = TITLE_FONT
        title.alignment = Alignment(horizontal="center")
        sheet.append([title])
        sheet.append(
            [
                neutralise(f"填报单位：{heading.unit}"),
                None,
                neutralise(f"填报人：{heading.filled_by}"),
                None,
                neutralise(f"电话：{heading.phone}"),
                None,
                f"日期：{heading.day:%Y年%m月%d日}",
            ]
        )
        sheet.append([_header_cell(sheet, label) for label in header])
        for row in rows:
            count += 1
            sheet.append([count, *[_ledger_value(sheet, value) for value in row]])
        sheet.append([])
        sheet.append(["审核人：", None, None, "审核日期："])
    except BaseException:
        _discard_sheet(sheet)
        raise
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response closes it
    try:
        workbook.save(target)
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=count)


def _ledger_value(sheet, value: object) -> object:
    if isinstance(value, Marked):
        cell = WriteOnlyCell(sheet, value=neutralise(value.value))
        cell.fill = PatternFill(fill_type="solid", start_color=value.fill, end_color=value.fill)
        cell.alignment = Alignment(horizontal="center")
        return cell
    return _xlsx_value(sheet, value)


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
