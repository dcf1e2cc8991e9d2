"""The one export layer (STYLE.md "Exports"). An export is a row generator whose first item is the
header and every later item a row; ``write_xlsx`` or ``write_csv`` turns it into a file.

Rows are streamed to a temporary file on disk (openpyxl write-only mode for XLSX), never built whole
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
from typing import IO

import openpyxl
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

_THIN = Side(style="thin", color="808080")
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill(fill_type="solid", start_color="DDEBF7", end_color="DDEBF7")
HEADER_ALIGNMENT = Alignment(horizontal="center", vertical="center", wrap_text=True)
HEADER_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


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
    on every printed page), columns as wide as ``widths`` says or else as their header needs."""
    rows = iter(rows)
    header = [str(label) for label in next(rows)]
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    # Write-only sheets take their layout before the first row is written.
    for index, label in enumerate(header):
        width = widths[index] if widths is not None and index < len(widths) else None
        sheet.column_dimensions[get_column_letter(index + 1)].width = width or _header_width(label)
    sheet.freeze_panes = "A2"
    if header:
        sheet.print_title_rows = "1:1"
    count = 0
    try:
        sheet.append([_header_cell(sheet, label) for label in header])
        for row in rows:
            sheet.append([_xlsx_value(sheet, value) for value in row])
            count += 1
    except BaseException:
        _discard(sheet)
        raise
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response closes it
    try:
        workbook.save(target)
    except BaseException:
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


def _discard(sheet) -> None:
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


def display_width(text: str) -> int:
    """Columns the text takes on a terminal or in Excel's width unit: a CJK character takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _header_width(label: str) -> float:
    return float(min(MAX_WIDTH, max(MIN_WIDTH, display_width(label) + 4)))


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
