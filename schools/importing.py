"""Reading the files schools keep (rosters, staff lists) and normalising what clerks type.

The readers here know nothing of students or staff: an importer declares its columns with their
aliases (a subclass of ``Importer`` at the end of this module), gets back the data rows keyed by
column, and reports each problem with its sheet, row number, column and a reason in Chinese.

Formats (DESIGN §9, issue 8): XLSX read by python-calamine, its hidden rows and error cells found
by a streaming scan of the sheet XML (openpyxl for what the scan cannot place), legacy XLS (BIFF)
read by python-calamine, CSV in UTF-8 (with or without BOM), UTF-16 or GBK/GB18030 read
by the csv module. Every visible sheet whose header matches is read (a school keeps one sheet per
class); hidden sheets never are.
"""

import codecs
import csv
import datetime
import operator
import re
import unicodedata
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from django.db import connections, router
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel
from openpyxl.worksheet._reader import WorkSheetParser
from openpyxl.worksheet.datavalidation import DataValidation

# Header cells are searched for in the first rows: registry exports put a title above them.
HEADER_SEARCH_ROWS = 10
# A real roster expands to a few MB of XML; far more than this is a zip bomb, not a roster.
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_DATA_ROWS = 50_000
# No cell of a roster or a staff list holds more than a few hundred characters. A file with a longer
# one is refused: one huge shared string referenced from every cell would otherwise make each
# cell's checks, and each problem message quoting it, megabytes long (a 10 KB upload, hours of work).
MAX_CELL_CHARS = 500
# How many hidden rows the preview lists by number (the count is always given).
HIDDEN_ROWS_LISTED = 50

XLSX, XLS, CSV = "xlsx", "xls", "csv"
MISSING_REQUIRED = "缺少必填列："
DAMAGED = "文件已损坏，无法作为 Excel 工作簿打开。请重新导出后上传。"
NOT_A_WORKBOOK = "文件不是 Excel 工作簿（.xlsx 或 .xls）或 CSV 文件，无法读取。请上传 .xlsx、.xls 或 .csv 格式的文件。"
WEB_PAGE = (
    "这个文件其实是网页（HTML），只是名字以 .xls 结尾（一些系统导出“Excel”时会这样做）。"
    "请用 Excel 或 WPS 打开它，“另存为”Excel 工作簿（.xlsx）后重新上传。"
)


class SheetError(Exception):
    """The file as a whole cannot be used; the message says why, in Chinese."""


# --- normalising text --------------------------------------------------------------------------

# OOXML writes characters XML cannot hold as _xHHHH_ (a line break inside a cell: _x000D_).
_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_WHITESPACE = re.compile(r"\s+")


# Format and control characters (Unicode 14 categories Cf and Cc: zero-width spaces and joiners,
# byte-order marks, direction marks, soft hyphens, NUL…), except the white space \s matches (tabs,
# line breaks), which becomes a space instead. tests/test_importing.py checks the list against
# unicodedata.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
_CJK_LINE_BREAK = re.compile(r"(?<=[^\x00-\x7f])[ \t\u3000]*[\r\n\u2028\u2029]+[ \t\u3000]*(?=[^\x00-\x7f])")


def _unescape_ooxml(match: re.Match) -> str:
    return chr(int(match.group(1), 16))


def normalise_text(value: str) -> str:
    """A cell's text as meant: OOXML escapes (``_x000D_``) decoded, invisible characters (zero-width
    spaces, byte-order marks, direction marks, soft hyphens, control characters) removed, full-width
    letters, digits and spaces folded (NFKC, which also turns non-breaking spaces into spaces), and
    runs of white space, line breaks included, made one space; trimmed."""
    if value.isprintable() and "_x" not in value:
        if value.isascii():
            return value.strip()
        # Printable text holds no line breaks, tabs, invisible characters or white space other
        # than the ASCII space (all are categories Cc, Cf, Z*): only NFKC and runs of spaces are left.
        if unicodedata.is_normalized("NFKC", value):
            return (_WHITESPACE.sub(" ", value) if "  " in value else value).strip()
    return normalise_text_slow(value)


def normalise_text_slow(value: str) -> str:
    for _ in range(2):  # _x005F_x000D_ is an escaped escape: undo both layers
        if "_x" not in value:
            break
        value = _OOXML_ESCAPE.sub(_unescape_ooxml, value)
    # A line break between two Chinese characters only wrapped the text in its cell: drop it.
    value = _CJK_LINE_BREAK.sub("", value)
    value = _INVISIBLE.sub("", value)
    if not unicodedata.is_normalized("NFKC", value):
        value = unicodedata.normalize("NFKC", value)
    return _WHITESPACE.sub(" ", value).strip()


def _normalise_cell(value: object) -> object:
    return normalise_text(value) if isinstance(value, str) and len(value) <= MAX_CELL_CHARS else value


# --- columns and headers -----------------------------------------------------------------------

_HEADER_NOTE = re.compile(r"(\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】|<[^<>]*>)$")
_HEADER_MARKS = re.compile(r"[*※★☆:：]")


def header_key(text: object) -> str:
    """Header text as compared: escapes decoded, invisible characters and all spaces removed,
    width-normalised, asterisks and colons dropped, trailing notes in brackets removed:
    「身份证件号_x000D_\\n（必填）」 → 「身份证件号」."""
    if text is None or isinstance(text, bool):
        return ""
    value = str(text)
    if len(value) > MAX_CELL_CHARS:  # not a header; normalising it would only cost time
        return ""
    value = normalise_text(value).replace(" ", "")
    value = _HEADER_MARKS.sub("", value)
    while True:
        stripped = _HEADER_NOTE.sub("", value)
        if stripped == value or not stripped:
            return value
        value = stripped


_header_key = header_key  # the name other modules used


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = False

    def header_keys(self) -> frozenset[str]:
        return frozenset(header_key(name) for name in (self.label, *self.aliases))

    def matches(self, header: str) -> bool:
        return header in self.header_keys()


@dataclass(frozen=True, order=True, slots=True)
class RowRef:
    """Where a row is: the sheet (by its place in the workbook) and its row number there. Printed as
    「第 5 行」, or 「「二班」第 5 行」 when the file had more than one sheet read."""

    sheet_index: int
    row: int
    sheet: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"「{self.sheet}」第 {self.row} 行" if self.sheet else f"第 {self.row} 行"


@dataclass(frozen=True)
class Problem:
    ref: RowRef
    column: str
    message: str

    @property
    def row(self) -> int:
        return self.ref.row

    def as_dict(self) -> dict:
        # The sheet is named only when the file had more than one sheet read.
        where = {"row": self.ref.row, "sheet": self.ref.sheet} if self.ref.sheet else {"row": self.ref.row}
        return {**where, "column": self.column, "message": self.message}


@dataclass
class SheetReport:
    """One sheet of the workbook as the preview tells of it: read or skipped, and why."""

    title: str
    read: bool
    reason: str = ""
    rows: int = 0

    def as_dict(self) -> dict:
        return {"title": self.title, "read": self.read, "reason": self.reason, "rows": self.rows}


@dataclass
class Sheet:
    """The data rows of every sheet read, keyed by column; each row's cells hold only the columns
    its own sheet has (a sheet without 身份证件号 must not blank the ones stored)."""

    title: str  # the sheets read, 「、」-joined
    header_row: int  # of the first sheet read
    columns: dict[str, int]  # column key -> 0-based position, in the first sheet read
    rows: list[tuple[RowRef, dict[str, object]]] = field(default_factory=list)
    sheets: list[SheetReport] = field(default_factory=list)
    columns_used: list[dict] = field(default_factory=list)  # {"header": as in the file, "column": label}
    columns_ignored: list[str] = field(default_factory=list)
    hidden_rows: list[RowRef] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # column keys of any sheet read

    def has(self, key: str) -> bool:
        return key in self.keys

    def describe(self) -> dict:
        """What the preview shows about the file itself (JSON-ready)."""
        return {
            "sheets": [report.as_dict() for report in self.sheets],
            "columns_used": self.columns_used,
            "columns_ignored": self.columns_ignored,
            "hidden_rows": len(self.hidden_rows),
            "hidden_rows_listed": [str(ref) for ref in self.hidden_rows[:HIDDEN_ROWS_LISTED]],
        }


# --- the container -----------------------------------------------------------------------------


def check_upload(path: Path) -> str:
    """The format of an uploaded file (XLSX, XLS or CSV), judged by its bytes, not its name.

    Raises SheetError for a web page saved with an .xls name, a zip bomb, a damaged package or
    anything that is no spreadsheet at all."""
    with open(path, "rb") as handle:
        start = handle.read(4096)
    if start.startswith(b"\xd0\xcf\x11\xe0"):
        _check_xls_file(path)
        return XLS
    if start.startswith(b"PK\x03\x04"):
        _check_xlsx_package(path)
        return XLSX
    if _looks_like_web_page(start):
        raise SheetError(WEB_PAGE)
    encoding = _text_encoding(path)
    if encoding is None or not _looks_like_a_table(path, encoding):
        raise SheetError(NOT_A_WORKBOOK)
    return CSV


check_xlsx_container = check_upload  # the name other modules used


def _check_xlsx_package(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SheetError(DAMAGED) from None
    if "[Content_Types].xml" not in names or not any(name.startswith("xl/") for name in names):
        raise SheetError(NOT_A_WORKBOOK)
    if expanded > MAX_UNCOMPRESSED_BYTES:
        raise SheetError("文件解压后过大，不像是一份名册。请检查文件后重新上传。")


def _check_xls_file(path: Path) -> None:
    from python_calamine import CalamineWorkbook

    try:
        with open(path, "rb") as handle:
            CalamineWorkbook.from_filelike(handle).close()
    except Exception:  # calamine raises its own kinds for a broken file
        raise SheetError(DAMAGED) from None


def _looks_like_web_page(start: bytes) -> bool:
    for encoding in ("utf-8", "utf-16"):
        try:
            head = start.decode(encoding, errors="ignore").lstrip("\ufeff \t\r\n").lower()
        except LookupError:  # pragma: no cover - both codecs always exist
            continue
        if head.startswith(("<!doctype html", "<html", "<table", "<?xml", "mime-version:", "<meta", "<head")):
            return True
        if "<table" in head[:2048] or "urn:schemas-microsoft-com:office" in head[:2048]:
            return True
    return False


def _looks_like_a_table(path: Path, encoding: str) -> bool:
    """A CSV's first line separates its columns by commas, tabs or semicolons; plain prose does not."""
    with open(path, encoding=encoding, newline="") as handle:
        for line in handle:
            if line.strip():
                return any(separator in line for separator in ",\t;")
    return False


def _text_encoding(path: Path) -> str | None:
    """The encoding a CSV file was saved in, read in chunks: a byte-order mark says it; else UTF-8 if
    the whole file decodes as UTF-8; else GB18030 (a superset of the GBK a Chinese Windows writes).
    None for a file that is not text (NUL bytes, or bytes no such encoding accepts)."""
    with open(path, "rb") as handle:
        start = handle.read(4)
        if start.startswith(codecs.BOM_UTF8):
            candidates = ["utf-8-sig"]
        elif start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        else:
            candidates = ["utf-8", "gb18030"]
        for encoding in candidates:
            handle.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                while chunk := handle.read(64 * 1024):
                    if b"\x00" in chunk:
                        return None
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                continue
            return encoding
    return None


# --- the readers: each yields its sheets, each sheet its rows ---------------------------------


@dataclass
class _RawSheet:
    title: str
    hidden: bool
    rows: Callable[[], Iterator[tuple[int, tuple, bool]]]  # (row number, values, row hidden)


def _xlsx_sheets(path: Path) -> Iterator[_RawSheet]:
    """The sheets of an XLSX, their cells read by python-calamine (several times faster than
    openpyxl, and a tenth of its memory). What calamine does not tell, each row's hidden flag and
    the Excel error a cell shows (#N/A…), is found by a streaming scan of the sheet's XML. A sheet
    the scan cannot place (rows or error cells without their reference) is read by openpyxl, and so
    is every sheet of a workbook with a shared string longer than any cell may be: calamine would
    copy it into each cell that points at it (a 10 KB file, gigabytes), openpyxl shares it."""
    from python_calamine import CalamineWorkbook

    try:
        with CalamineWorkbook.from_path(str(path)) as workbook:
            metadata = list(workbook.sheets_metadata)
        parts = {} if _has_long_shared_string(path) else _xlsx_sheet_parts(path)
    except Exception:  # calamine raises its own kinds for a broken package
        raise SheetError(DAMAGED) from None
    yield from _calamine_sheets(metadata, lambda name: _xlsx_sheet_reader(path, name, parts.get(name)))


def _calamine_first_column(sheet) -> int:
    """Where the rows of python-calamine's ``iter_rows`` begin: at row 1 of the sheet, empty rows
    above the data included, but at the first column holding data (``sheet.start``), so the row's
    number is its position + 1 and its cells need that many empty ones in front (python-calamine
    issue #177; a test on a sheet that starts lower and further right holds this)."""
    return (sheet.start or (0, 0))[1]


def _calamine_sheets(metadata, rows_of: Callable[[str], Callable[[], Iterator]]) -> Iterator[_RawSheet]:
    """The worksheets (not chart sheets) of a calamine workbook's metadata, each with whether it is
    hidden and ``rows_of(its name)`` as its rows."""
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    for sheet in metadata:
        if sheet.typ == SheetTypeEnum.WorkSheet:
            yield _RawSheet(
                title=sheet.name, hidden=sheet.visible != SheetVisibleEnum.Visible, rows=rows_of(sheet.name)
            )


def _xlsx_sheet_reader(path: Path, name: str, part: str | None) -> Callable[[], Iterator]:
    """The ``rows`` of a _RawSheet: the sheet is parsed and scanned once for the header search and
    the read that follows it, and let go once read to the end. The workbook is closed as soon as the
    sheet is out of it: its shared strings are not kept alongside the cells copied from them."""
    from python_calamine import CalamineWorkbook

    cache: dict = {}

    def rows() -> Iterator[tuple[int, tuple, bool]]:
        if "marks" not in cache:
            cache["marks"] = _xlsx_marks(path, part) if part else None
        marks = cache["marks"]
        if marks is None:
            yield from _xlsx_rows_openpyxl(path, name)
            return
        if "sheet" not in cache:
            with CalamineWorkbook.from_path(str(path)) as workbook:
                cache["sheet"] = workbook.get_sheet_by_name(name)
        yield from _xlsx_rows(cache["sheet"], *marks)
        del cache["sheet"]

    return rows


def _xlsx_rows(sheet, hidden_rows: set[int], errors: dict[int, dict[int, str]]) -> Iterator[tuple[int, tuple, bool]]:
    """A sheet's rows as openpyxl's read-only mode gives them: None for an empty cell, an integral
    number under 10^15 as an int (a longer one stays a float: its digits were lost, and that is
    reported), a date cell as a datetime, an error cell as its error text. Empty rows are skipped."""
    first_column = _calamine_first_column(sheet)
    padding = (None,) * first_column
    for offset, values in enumerate(sheet.iter_rows()):
        number = offset + 1
        row = padding + tuple(map(_calamine_value, values))
        row_errors = errors.get(number)
        if row_errors:
            row = list(row)
            for position, text in row_errors.items():
                row.extend([None] * (position + 1 - len(row)))
                row[position] = text
            row = tuple(row)
        if row.count(None) == len(row):
            continue
        yield number, row, number in hidden_rows


def _calamine_value(value: object) -> object:
    if value == "":
        return None
    kind = type(value)
    if kind is float and value.is_integer() and abs(value) < 1e15:
        return int(value)
    if kind is datetime.date:
        return datetime.datetime(value.year, value.month, value.day)  # noqa: DTZ001 - a cell has no zone
    return value


_ROW_TAG = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_ERROR_CELL = re.compile(rb"<(?:\w+:)?c\b([^>]*\bt=[\"']e[\"'][^>/]*)>(.*?)</(?:\w+:)?c>", re.DOTALL)
_HIDDEN = re.compile(rb"\bhidden=[\"'](?:1|true)[\"']", re.IGNORECASE)
_ROW_NUMBER = re.compile(rb"\br=[\"'](\d+)[\"']")
_CELL_REF = re.compile(rb"\br=[\"']([A-Za-z]{1,3})(\d+)[\"']")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</")
_ROW_END = re.compile(rb"</(?:\w+:)?row>")
SCAN_CHUNK = 1024 * 1024


def _xlsx_marks(path: Path, part: str) -> tuple[set[int], dict[int, dict[int, str]]] | None:
    """The hidden rows and the error cells ({row: {0-based column: "#N/A"}}) of a sheet's XML,
    scanned in chunks of whole rows (the XML is never held whole). None when a hidden row or an
    error cell carries no reference (the XML allows it; Excel and WPS always write one)."""
    hidden: set[int] = set()
    errors: dict[int, dict[int, str]] = {}

    def scan(text: bytes) -> bool:
        if b"hidden" in text:
            for match in _ROW_TAG.finditer(text):
                if _HIDDEN.search(match.group(1)):
                    number = _ROW_NUMBER.search(match.group(1))
                    if number is None:
                        return False
                    hidden.add(int(number.group(1)))
        if b't="e"' in text or b"t='e'" in text:
            for match in _ERROR_CELL.finditer(text):
                ref = _CELL_REF.search(match.group(1))
                if ref is None:
                    return False
                value = _VALUE.search(match.group(2))
                if value is not None:
                    column = 0
                    for letter in ref.group(1).upper():
                        column = column * 26 + letter - 64
                    text_value = value.group(1).decode("utf-8", errors="replace")
                    errors.setdefault(int(ref.group(2)), {})[column - 1] = text_value
        return True

    with zipfile.ZipFile(path) as archive, archive.open(part) as source:
        pending = b""
        while chunk := source.read(SCAN_CHUNK):
            pending += chunk
            ends = list(_ROW_END.finditer(pending, max(0, len(pending) - len(chunk) - 16)))
            if not ends:
                continue
            cut = ends[-1].end()
            if not scan(pending[:cut]):
                return None
            pending = pending[cut:]
        if pending and not scan(pending):
            return None
    return hidden, errors


_SHARED_STRING = re.compile(rb"<(?:\w+:)?si\b[^>]*>(.*?)</(?:\w+:)?si>", re.DOTALL)
_TAG = re.compile(rb"<[^>]*>")


def _has_long_shared_string(path: Path) -> bool:
    """Whether the workbook's shared strings hold one longer than MAX_CELL_CHARS, read in chunks."""
    with zipfile.ZipFile(path) as archive:
        name = next((n for n in archive.namelist() if n.lower() == "xl/sharedstrings.xml"), None)
        if name is None:
            return False
        with archive.open(name) as source:
            pending = b""
            while chunk := source.read(SCAN_CHUNK):
                pending += chunk
                end = 0
                for match in _SHARED_STRING.finditer(pending):
                    end = match.end()
                    if len(match.group(1)) > MAX_CELL_CHARS and _shared_text_length(match.group(1)) > MAX_CELL_CHARS:
                        return True
                pending = pending[end:]
                # One string, still open, already too long:
                if len(pending) > MAX_CELL_CHARS * 8 and _shared_text_length(pending) > MAX_CELL_CHARS:
                    return True
    return False


def _shared_text_length(xml: bytes) -> int:
    return len(_TAG.sub(b"", xml).decode("utf-8", errors="replace"))


_RELATIONSHIPS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def _xlsx_sheet_parts(path: Path) -> dict[str, str]:
    """Sheet name -> the path of its XML in the package, from the workbook and its relationships."""
    import posixpath

    from openpyxl.xml.functions import fromstring  # defusedxml's when it is installed

    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        workbook_part = "xl/workbook.xml"
        root_rels = fromstring(archive.read("_rels/.rels"))
        for relation in root_rels:
            if relation.get("Type", "").endswith("/officeDocument"):
                workbook_part = relation.get("Target", workbook_part).lstrip("/")
        folder, base = posixpath.split(workbook_part)
        rels = fromstring(archive.read(posixpath.join(folder, "_rels", base + ".rels")))
        targets = {}
        for relation in rels:
            target = relation.get("Target", "")
            targets[relation.get("Id")] = (
                target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            )
        workbook = fromstring(archive.read(workbook_part))
    parts = {}
    for element in workbook.iter():
        if element.tag.rsplit("}", 1)[-1] == "sheet":
            target = targets.get(element.get(f"{_RELATIONSHIPS}id"))
            if target in names:
                parts[element.get("name")] = target
    return parts


def _xlsx_rows_openpyxl(path: Path, name: str) -> Iterator[tuple[int, tuple, bool]]:
    """A sheet's rows streamed as openpyxl's read-only mode does, keeping each row's hidden flag
    (read-only worksheets drop it). Rows absent from the XML are not yielded; the used range a file
    claims (<dimension>) is not trusted."""
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken package
        raise SheetError(DAMAGED) from None
    try:
        worksheet = workbook[name]
        with worksheet._get_source() as source:
            parser = WorkSheetParser(
                source,
                worksheet._shared_strings,
                data_only=True,
                epoch=workbook.epoch,
                date_formats=workbook._date_formats,
                timedelta_formats=workbook._timedelta_formats,
            )
            for number, cells in parser.parse():
                attributes = parser.row_dimensions.pop(str(number), None) or {}
                hidden = str(attributes.get("hidden", "")).lower() in ("1", "true")
                yield number, worksheet._get_row(cells, 1, None, values_only=True), hidden
    finally:
        workbook.close()


def _xls_sheets(path: Path) -> Iterator[_RawSheet]:
    from python_calamine import CalamineWorkbook

    try:
        # By content: the stored upload's name does not say its format.
        with open(path, "rb") as handle:
            workbook = CalamineWorkbook.from_filelike(handle)
        metadata = list(workbook.sheets_metadata)
    except Exception:  # calamine raises its own kinds for a broken file
        raise SheetError(DAMAGED) from None
    try:
        yield from _calamine_sheets(metadata, lambda name: lambda: _xls_rows(workbook, name))
    finally:
        workbook.close()


def _xls_rows(workbook, name: str) -> Iterator[tuple[int, tuple, bool]]:
    try:
        sheet = workbook.get_sheet_by_name(name)
    except Exception:
        raise SheetError(DAMAGED) from None
    first_column = _calamine_first_column(sheet)
    padding = (None,) * first_column
    for offset, values in enumerate(sheet.iter_rows()):
        yield offset + 1, padding + tuple(None if v == "" else v for v in values), False


def _csv_sheets(path: Path) -> Iterator[_RawSheet]:
    encoding = _text_encoding(path)
    if encoding is None:
        raise SheetError(NOT_A_WORKBOOK)
    yield _RawSheet(title="CSV", hidden=False, rows=lambda: _csv_rows(path, encoding))


def _csv_rows(path: Path, encoding: str) -> Iterator[tuple[int, tuple, bool]]:
    csv.field_size_limit(MAX_CELL_CHARS * 4)
    with open(path, encoding=encoding, newline="") as handle:
        sample = handle.read(8192)
        handle.seek(0)
        first_line = sample.splitlines()[0] if sample else ""
        # Excel's 「CSV」 uses commas; its 「Unicode 文本」 uses tabs.
        delimiter = max(",\t;", key=first_line.count)
        try:
            for number, values in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
                yield number, tuple(v if v != "" else None for v in values), False
        except csv.Error:
            raise SheetError(
                f"CSV 文件第 {number + 1} 行无法读取（引号不成对或单元格过长）。请用 Excel 或 WPS 打开检查后重新保存。"
            ) from None


_READERS = {XLSX: _xlsx_sheets, XLS: _xls_sheets, CSV: _csv_sheets}


# --- finding headers and reading sheets --------------------------------------------------------

# A group heading over sub-headings names what follows: 「监护人信息」 over 「姓名」 → 「监护人姓名」.
_GROUP_SUFFIX = re.compile(r"(信息|情况|资料|基本信息)$")


@dataclass
class _Header:
    row: int  # the last header row (data starts below it)
    positions: dict[str, int]  # column key -> position
    texts: dict[int, str]  # position -> header text as shown (「监护人信息 / 姓名」)


def _match(keys: dict[str, str], candidates: list[str]) -> str | None:
    for candidate in candidates:
        key = keys.get(candidate)
        if key is not None:
            return key
    return None


def _header_in(top: tuple, bottom: tuple | None, number: int, keys: dict[str, str]) -> _Header:
    """The columns a header row (``bottom`` None) or a two-row header names. In a two-row header a
    heading merged over several columns is read only in its first cell, so the group carries on to
    the right while the top row is empty and the second row names a sub-heading."""
    positions: dict[str, int] = {}
    texts: dict[int, str] = {}
    group = group_text = ""
    width = max(len(top), len(bottom or ()))
    for pos in range(width):
        upper = header_key(top[pos]) if pos < len(top) else ""
        upper_text = _shown(top, pos)
        if bottom is None:
            candidates, shown = [upper], upper_text
        else:
            lower = header_key(bottom[pos]) if pos < len(bottom) else ""
            if lower:
                if upper:
                    group, group_text = upper, upper_text
                base = _GROUP_SUFFIX.sub("", group)
                candidates = [group + lower, base + lower, lower] if group else [lower]
                shown = f"{group_text} / {_shown(bottom, pos)}" if group else _shown(bottom, pos)
            else:
                group = ""
                candidates, shown = [upper], upper_text
        if not shown:
            continue
        texts[pos] = shown
        key = _match(keys, [c for c in candidates if c])
        if key is not None and key not in positions:
            positions[key] = pos
    return _Header(row=number + (bottom is not None), positions=positions, texts=texts)


def _shown(values: tuple, pos: int) -> str:
    """A header cell as the preview shows it: normalised, but with its notes."""
    value = values[pos] if pos < len(values) else None
    if value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) > MAX_CELL_CHARS):
        return ""
    return normalise_text(str(value))


def _find_header(head: list[tuple[int, tuple]], keys: dict[str, str]) -> _Header | None:
    """The header among a sheet's first rows: the row (or pair of rows) naming the most columns;
    a single row wins a tie, so a data row under a one-row header is never read as sub-headings."""
    singles = {number: _header_in(values, None, number, keys) for number, values in head}
    found = list(singles.values())
    for index, (number, values) in enumerate(head[:-1]):
        following, below = head[index + 1]
        if following == number + 1:
            pair = _header_in(values, below, number, keys)
            # A pair must name more columns than its second row alone: a title row above a one-row
            # header is not a group heading.
            if len(pair.positions) > len(singles[following].positions):
                found.append(pair)
    best: _Header | None = None
    for header in found:
        if len(header.positions) >= 2 and (best is None or len(header.positions) > len(best.positions)):
            best = header
    return best


def read_sheet(path: Path, columns: Iterable[Column]) -> Sheet:
    """Read every visible sheet whose header names every required column.

    Returns the rows of all sheets read, in workbook order, with a report of each sheet (read, or
    skipped and why), the columns used and ignored and the hidden rows. Raises SheetError when no
    sheet can be read, saying why for the sheet that came closest."""
    columns = list(columns)
    keys = {alias: column.key for column in columns for alias in column.header_keys()}
    labels = {column.key: column.label for column in columns}
    kind = check_upload(path)
    result = Sheet(title="", header_row=0, columns={})
    read: list[tuple[int, str]] = []  # (sheet index, title)
    best_missing: tuple[str, list[str]] | None = None
    empty_title: str | None = None
    try:
        for index, raw in enumerate(_READERS[kind](path)):
            if raw.hidden:
                result.sheets.append(SheetReport(raw.title, False, "隐藏的工作表"))
                continue
            rows = raw.rows()
            head: list[tuple[int, tuple]] = []
            for number, values, _hidden in rows:
                if number > HEADER_SEARCH_ROWS:
                    break
                head.append((number, values))
            rows.close()
            header = _find_header(head, keys)
            if header is None:
                result.sheets.append(SheetReport(raw.title, False, "没有找到表头行"))
                continue
            missing = [c.label for c in columns if c.required and c.key not in header.positions]
            if missing:
                if best_missing is None or len(missing) < len(best_missing[1]):
                    best_missing = (raw.title, missing)
                result.sheets.append(SheetReport(raw.title, False, f"{MISSING_REQUIRED}{'、'.join(missing)}"))
                continue
            count = _read_rows(result, index, raw, header, columns, labels)
            if not count:
                # An emptied template sheet must not hide the data pasted into another sheet.
                empty_title = empty_title or raw.title
                result.sheets.append(SheetReport(raw.title, False, "表头下面没有数据行"))
                continue
            result.sheets.append(SheetReport(raw.title, True, f"表头在第 {header.row} 行", count))
            if not read:
                result.header_row, result.columns = header.row, dict(header.positions)
            read.append((index, raw.title))
            _describe_columns(result, header, labels)
    except SheetError:
        raise
    except Exception:  # a sheet's XML is parsed only while its rows are read: a broken one fails here
        raise SheetError(DAMAGED) from None
    if read:
        result.title = "、".join(title for _, title in read)
        if len(read) == 1:  # one sheet: rows are called 「第 5 行」 as the clerk sees them
            for position, (ref, cells) in enumerate(result.rows):  # in place: no second list of 50,000
                result.rows[position] = (RowRef(0, ref.row), cells)
            result.hidden_rows = [RowRef(0, ref.row) for ref in result.hidden_rows]
        return result
    if empty_title:
        raise SheetError(f"工作表「{empty_title}」在表头下面没有数据行。")
    required = "、".join(f"「{c.label}」" for c in columns if c.required)
    if best_missing:
        title, missing = best_missing
        raise SheetError(
            f"工作表「{title}」缺少必填列：{'、'.join(missing)}。请使用下载的模板，或把表头改为模板中的名称。"
        )
    skipped = "；".join(f"「{r.title}」：{r.reason}" for r in result.sheets if r.reason.startswith("隐藏"))
    raise SheetError(
        f"没有找到表头行：文件中没有哪个工作表的前 {HEADER_SEARCH_ROWS} 行包含{required}等列。请使用下载的模板。"
        + (f"（{skipped}）" if skipped else "")
    )


# Short texts repeat down a column (性别, 年级, 班级, 是/否, 关系): each is normalised once a sheet
# and kept once, not once a row.
_SHARED_TEXT_CHARS = 12
_SHARED_TEXTS = 20_000


def _read_rows(result: Sheet, index: int, raw: _RawSheet, header: _Header, columns, labels) -> int:
    count = 0
    positions = header.positions
    shared: dict[str, object] = {}

    def normalised(value: object) -> object:
        if value.__class__ is not str or len(value) > _SHARED_TEXT_CHARS:
            return _normalise_cell(value)
        text = shared.get(value)
        if text is None:
            text = _normalise_cell(value)
            if len(shared) < _SHARED_TEXTS:
                shared[value] = text
        return text

    for number, values, hidden in raw.rows():
        if number <= header.row:
            continue
        if all(_blank(v) for v in values):
            continue
        if len(result.rows) >= MAX_DATA_ROWS:
            raise SheetError(f"工作表「{raw.title}」超过 {MAX_DATA_ROWS} 行，请按学段拆分后分别上传。")
        cells = {key: normalised(values[pos]) if pos < len(values) else None for key, pos in positions.items()}
        _check_lengths(raw.title, number, cells, labels)
        ref = RowRef(index, number, raw.title)
        result.rows.append((ref, cells))
        if hidden:
            result.hidden_rows.append(ref)
        count += 1
    result.keys.update(positions)
    return count


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= MAX_CELL_CHARS and not normalise_text(value))


def _describe_columns(result: Sheet, header: _Header, labels: dict[str, str]) -> None:
    used = {pos: key for key, pos in header.positions.items()}
    known_used = {(entry["header"], entry["column"]) for entry in result.columns_used}
    for pos, text in sorted(header.texts.items()):
        if pos in used:
            entry = (text, labels[used[pos]])
            if entry not in known_used:
                known_used.add(entry)
                result.columns_used.append({"header": text, "column": labels[used[pos]]})
        elif text not in result.columns_ignored:
            result.columns_ignored.append(text)


def _check_lengths(title: str, number: int, cells: dict[str, object], labels: dict[str, str]) -> None:
    for key, value in cells.items():
        if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
            raise SheetError(
                f"工作表「{title}」第 {number} 行「{labels[key]}」列有 {len(value)} 个字，"
                f"超过 {MAX_CELL_CHARS} 个字，不像是名单的内容。请检查这个单元格后重新上传。"
            )


# --- normalising cell values -------------------------------------------------------------------


def clean_text(value: object) -> str:
    """A cell as text: normalised as ``normalise_text`` does, 1.0 read as 1, a date cell as its date."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime.datetime):
        value = value.date()
    return normalise_text(str(value))


def lost_digits(value: object) -> bool:
    """A number cell of more than 15 digits: Excel keeps only 15, so the tail is already zeros."""
    return isinstance(value, float) and abs(value) >= 1e15


EXCEL_ERRORS = {"#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!", "#SPILL!", "#CALC!"}


def excel_error(value: object) -> str | None:
    """The error a formula cell shows (#N/A, #REF!, …): never data, so never imported as a name."""
    return value if isinstance(value, str) and value.strip().upper() in EXCEL_ERRORS else None


def clean_code(value: object) -> str:
    """An identifier (学籍号, 身份证件号, phone): no spaces at all, letters upper-case."""
    return clean_text(value).replace(" ", "").upper()


# --- names -------------------------------------------------------------------------------------

# The middle dot of minority and foreign names (阿依古丽·买买提) as typed on different keyboards and
# input methods: Latin ·, bullet •, katakana ・ (and its half-width ･), full-width ．, ‧, ∙, ⋅, 。
_NAME_DOTS = re.compile(r"(?<=[^\x00-\x7f])\s*[·•・･.‧∙⋅︒]\s*(?=[^\x00-\x7f])")
NAME_DOT = "·"


def unify_name_dots(name: str) -> str:
    """「阿依古丽 • 买买提」 → 「阿依古丽·买买提」: one middle dot, no spaces around it. Only a dot
    between two Chinese characters is a name's middle dot (「evil.example」 stays as it is)."""
    return _NAME_DOTS.sub(NAME_DOT, name) if name else name


_CJK_SPACE = re.compile(r"(?<=[^\x00-\x7f]) +(?=[^\x00-\x7f])")


def clean_name(value: object) -> str:
    """A person's name as stored: normalised like every cell, the spaces clerks put between the
    characters of a two-character name to line it up (「王　明」) removed, middle dots unified."""
    return unify_name_dots(_CJK_SPACE.sub("", clean_text(value)))


# Every character damaged_text looks for (a superset: the loop below decides).
_MAYBE_DAMAGED = re.compile("[?？\ufffd\ud800-\udfff\ue000-\uf8ff\U000f0000-\U0010ffff]")


def damaged_text(text: str) -> str | None:
    """Why a name or address cannot be what the clerk meant, or None. A question mark, the
    replacement character � or a private-use character is what text turns into when a program
    saved it in an encoding that had no room for a character (a rare character in a GBK file) —
    the real character is lost and must be typed again. Characters outside the BMP (𠮷) are fine."""
    if not _MAYBE_DAMAGED.search(text):  # the usual case, without a look at each character
        return None
    for ch in text:
        if ch in "?？":
            return "含有问号「?」，通常是文件另存时生僻字变成了问号"
        if ch == "\ufffd":
            return "含有乱码字符「�」，通常是文件编码转换时文字已损坏"
        category = unicodedata.category(ch)
        if category == "Co":
            return f"含有无法显示的字符（U+{ord(ch):04X}，私用区），通常是生僻字用了自造字或编码转换时已损坏"
        if category == "Cs":
            return "含有损坏的字符"
    return None


# --- dates -------------------------------------------------------------------------------------

_DATE_TEXT = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?"
    r"(?:\s*T?\s*\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_DATE_DIGITS = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_SERIAL_TEXT = re.compile(r"^\d{5}(?:\.0+)?$")
_LAST_SERIAL = 2958465  # 9999-12-31


def parse_date(value: object) -> datetime.date:
    """Every spelling of a real date: date cells (with any time of day), Excel serial numbers (as a
    number cell or as the text a CSV carries), 2015-03-08, 2015/3/8, 2015.3.8, 2016-09-04 00:00:00,
    2016/9/5 0:00, 2015年3月8日, 20150308 (text or number). Raises ValueError echoing the value as
    typed."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    typed = clean_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value <= _LAST_SERIAL:
            return from_excel(value).date()
        text = typed
    else:
        text = typed
        if _SERIAL_TEXT.match(text) and 1 <= float(text) <= _LAST_SERIAL:
            return from_excel(float(text)).date()
    match = _DATE_TEXT.match(text) or _DATE_DIGITS.match(text)
    if match:
        year, month, day = (int(part) for part in match.groups())
        try:
            return datetime.date(year, month, day)
        except ValueError:
            raise ValueError(f"「{typed}」不是有效日期（没有这一天）") from None
    raise ValueError(f"「{typed}」不是可识别的日期，请写成 2015-03-08 或 2015/3/8")


# --- ID numbers --------------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_SCIENTIFIC = re.compile(r"^\d(?:\.\d+)?E\+?\d+$")
EXCEL_ID_FIX = "请把这一列的单元格格式设为“文本”，再按户口本或学籍系统重新输入完整的号码（不要从数字格式的列复制粘贴）"
EXCEL_ID_NUMBER = "身份证件号被 Excel 当作数字，后几位已变成 0。" + EXCEL_ID_FIX
EXCEL_ID_SCIENTIFIC = "身份证件号被 Excel 当作数字，显示成了科学计数法（{text}），后几位已丢失。" + EXCEL_ID_FIX


def id_check_character(body: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    if len(body) != len(_ID_WEIGHTS):
        raise ValueError("an ID number's body is 17 digits")
    return _ID_CHECK[sum(map(operator.mul, map(int, body), _ID_WEIGHTS)) % 11]


def excel_id_damage(value: object) -> str | None:
    """Why an ID number cell cannot be trusted because it went through Excel's 15 significant digits:
    a number cell of more than 15 digits (whatever its check character), scientific notation
    (4.10522E+17), or 18 characters ending in zeros — a sequence code 000 is never issued, and
    000 with a wrong check character is the mark of the digits Excel dropped. None otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 1e15:
        return EXCEL_ID_NUMBER  # even an int written whole by another program: Excel cuts it on the next save
    text = clean_code(value)
    if _SCIENTIFIC.match(text):
        return EXCEL_ID_SCIENTIFIC.format(text=clean_text(value))
    if (
        len(text) == 18
        and text.isdigit()
        and (text.endswith("0000") or (text.endswith("000") and id_check_character(text[:17]) != text[17]))
    ):
        return EXCEL_ID_NUMBER
    return None


def id_number_birth_date(id_number: str) -> datetime.date | None:
    try:
        return datetime.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def validate_id_number(id_number: str) -> str:
    """A resident ID number (GB 11643): 18 characters, a valid birth date, the check character."""
    if not re.fullmatch(r"\d{17}[\dX]", id_number):
        raise ValueError("身份证件号应为 18 位（前 17 位是数字，最后一位是数字或 X）")
    if id_number_birth_date(id_number) is None:
        raise ValueError("身份证件号中的出生日期（第 7—14 位）无效")
    if id_check_character(id_number[:17]) != id_number[17]:
        raise ValueError("身份证件号校验位不正确，请核对是否抄错")
    return id_number


# Numbers of the documents other than the resident ID card that students hold: Hong Kong
# (A123456(7)) and Macau (1234567(8)) identity cards, Taiwan ID (A123456789), the mainland travel
# permits for HK/Macau (H12345678) and Taiwan residents (12345678), and passports (E12345678).
_OTHER_DOCUMENT = re.compile(
    r"^(?:[A-Z]{1,2}\d{6}\(?[0-9A]\)?|[157]\d{6}\(?\d\)?|[A-Z][12]\d{8}|[HM]\d{8,10}|\d{8}|\d{10}|[A-Z]{1,2}\d{7,8})$"
)


def looks_like_other_document(text: str) -> bool:
    """True for a number shaped like a HK/Macau/Taiwan or passport number rather than a resident ID."""
    return bool(_OTHER_DOCUMENT.match(text))


def id_number_gender(id_number: str) -> str:
    return "M" if int(id_number[16]) % 2 else "F"


def parse_phone(value: object) -> str:
    """A mobile (13812345678) or landline (0371-12345678) number, with +86 and separators removed."""
    text = re.sub(r"[\s\-()（）]", "", clean_code(value))
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    if re.fullmatch(r"1[3-9]\d{9}", text):
        return text
    if re.fullmatch(r"0\d{9,11}", text):
        return text
    raise ValueError(f"「{clean_text(value)}」不是有效的手机号或固定电话")


def parse_gender(value: object) -> str:
    text = clean_text(value).upper()
    if text in {"男", "男性", "M", "1"}:
        return "M"
    if text in {"女", "女性", "F", "2"}:
        return "F"
    raise ValueError(f"「{clean_text(value)}」不是有效性别，请填写“男”或“女”")


_YES = {"是", "Y", "YES", "1", "TRUE", "√", "有"}
_NO = {"否", "N", "NO", "0", "FALSE", "", "无", "×", "不是"}


# Registry exports prefix a code to their values: 「1-是」, 「2-单亲留守儿童」, 「0 无残疾」.
_CODE_PREFIX = re.compile(r"^\d{1,2}\s*[-.、:：_ ]\s*(?=\D)")


def without_code(value: object) -> str:
    """A registry value without its code: 「2-单亲留守儿童」 → 「单亲留守儿童」."""
    return _CODE_PREFIX.sub("", clean_text(value))


def parse_yes_no(value: object) -> bool:
    text = without_code(value).upper()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"「{clean_text(value)}」应填写“是”或“否”")


_LEFT_BEHIND = {
    "非留守儿童": False,
    "非留守": False,
    "单亲留守儿童": True,
    "双亲留守儿童": True,
    "单亲留守": True,
    "双亲留守": True,
    "留守儿童": True,
}


def parse_left_behind(value: object) -> bool:
    """是否留守儿童 as the registry writes it (非留守儿童 / 单亲留守儿童 / 双亲留守儿童, with or
    without a code such as 「2-单亲留守儿童」) or as 是/否 (DESIGN §3)."""
    text = without_code(value).replace(" ", "")
    if text in _LEFT_BEHIND:
        return _LEFT_BEHIND[text]
    try:
        return parse_yes_no(text)
    except ValueError:
        raise ValueError(
            f"「{clean_text(value)}」应填写“是”或“否”（或学籍系统的“非留守儿童”“单亲留守儿童”“双亲留守儿童”）"
        ) from None


NO_DISABILITY = {"", "无", "否", "非残疾", "无残疾", "不是", "没有", "N", "NO", "正常", "健康"}


def parse_disability(value: object) -> str:
    """残疾类型 as the registry writes it: 「无残疾」 (or 「0-无残疾」, 「无」, 「否」) → "", otherwise
    the kind without its code (「1-视力残疾」 → 「视力残疾」); 「是」 alone → 「残疾」 (DESIGN §3)."""
    text = without_code(value)
    if text.upper() in NO_DISABILITY:
        return ""
    if text in ("是", "有"):
        return "残疾"
    return text


_CHINESE_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_GRADE_WORDS = {
    "小班": -2,
    "中班": -1,
    "大班": 0,
    "初一": 7,
    "初二": 8,
    "初三": 9,
    "高一": 10,
    "高二": 11,
    "高三": 12,
    "小": -2,
    "中": -1,
    "大": 0,
}


def _chinese_number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _CHINESE_DIGITS for ch in text):
        return None
    if text == "十":
        return 10
    if text.startswith("十"):
        return 10 + _CHINESE_DIGITS[text[1]]
    if len(text) == 1:
        return _CHINESE_DIGITS[text]
    if len(text) == 2 and text[1] == "十":
        return _CHINESE_DIGITS[text[0]] * 10
    if len(text) == 3 and text[1] == "十":
        return _CHINESE_DIGITS[text[0]] * 10 + _CHINESE_DIGITS[text[2]]
    return None


def parse_grade(value: object) -> int:
    """一年级, 1年级, 1, 初一, 七年级, 高二, 大班 → the grade number (kindergarten ≤ 0)."""
    text = clean_code(value).replace("级", "").removesuffix("年")
    if text in _GRADE_WORDS:
        return _GRADE_WORDS[text]
    number = _chinese_number(text)
    if number is None or not 1 <= number <= 12:
        raise ValueError(f"「{clean_text(value)}」不是可识别的年级")
    return number


_GRADE_PREFIX = re.compile(
    r"^([一二三四五六七八九十\d]+年级|初[一二三]|高[一二三]|[小中大]班|[小中大](?=[(\d一二三四五六七八九十]))"
)


def parse_class(grade_value: object, class_value: object) -> tuple[int, int]:
    """Read (grade, class number) from a 年级 cell and a 班级 cell such as 2班, (2)班, 02, 三年级(2)班."""
    class_text = clean_code(class_value)
    grade_text = clean_code(grade_value)
    match = _GRADE_PREFIX.match(class_text)
    if match and len(match.group(0)) < len(class_text):
        grade_text = grade_text or match.group(0)
        class_text = class_text[len(match.group(0)) :]
    if not grade_text:
        raise ValueError("缺少年级")
    grade = parse_grade(grade_text)
    number = _chinese_number(class_text.removesuffix("班").strip("()"))
    if number is None or number <= 0:
        raise ValueError(f"「{clean_text(class_value)}」不是可识别的班级，请写成“2班”或“(2)班”")
    return grade, number


@dataclass
class Checked:
    """What an importer's check found: the rows it can apply, the problems, and a preview."""

    valid: list = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid_rows: set[RowRef] = field(default_factory=set)
    preview: dict = field(default_factory=dict)

    def add_problem(self, ref: RowRef, column: str, message: str) -> None:
        self.problems.append(Problem(ref=ref, column=column, message=message))
        self.invalid_rows.add(ref)


PROGRESS_EVERY = 250
PREVIEW_ROWS = 200
# Look-ups by a list of values go in chunks: SQLite allows 999 parameters in a query.
LOOKUP_CHUNK = 900
ARRAY_LOOKUP_CHUNK = 10_000


def chunked(values: list, size: int = LOOKUP_CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def lookup_chunk_size(model) -> int:
    """How many values ``lookup_in_chunks`` puts in one query on ``model``'s database."""
    return ARRAY_LOOKUP_CHUNK if connections[router.db_for_read(model)].vendor == "postgresql" else LOOKUP_CHUNK


def lookup_in_chunks(queryset, field_name: str, values: list) -> Iterator:
    """The rows of ``queryset`` whose ``field_name`` is one of ``values``, queried in chunks: one
    query per 900 values, whatever the file's length. On PostgreSQL the values go as one array
    parameter (``= ANY(%s)``), 10,000 a query: 900 separate parameters cost Django a preparation each
    and PostgreSQL a planning node each, most of a 50,000-row check's look-up time."""
    connection = connections[queryset.db]
    if connection.vendor == "postgresql":
        meta, quote = queryset.model._meta, connection.ops.quote_name
        column = f"{quote(meta.db_table)}.{quote(meta.get_field(field_name).column)}"
        for chunk in chunked(values, ARRAY_LOOKUP_CHUNK):
            # The column's name comes from the model; the values are one parameter.
            yield from queryset.extra(where=[f"{column} = ANY(%s)"], params=[chunk])  # noqa: S610
        return
    for chunk in chunked(values):
        yield from queryset.filter(**{f"{field_name}__in": chunk})


class Importer:
    """One kind of import (the roster, the staff list): its columns, how it checks one row, how it
    finds the records the rows update, how it applies them, and its template. The loop over the
    rows, the checks common to every row, duplicate detection within the file, the preview and the
    template builder live here, so a fix lands once for every importer (issue 8).

    A subclass sets ``kind``, ``columns``, ``watched`` (column keys the preview warns about when
    absent) and the template attributes, and implements ``prepare``, ``check_row``,
    ``match_existing``, ``preview_row`` and ``apply``. A checked row is any object with ``row``
    (its RowRef), ``existing`` (the record it updates, or None) and ``changes`` (labels)."""

    kind: str = ""
    columns: list[Column] = []
    watched: tuple[str, ...] = ()
    checked_class: type[Checked] = Checked
    # The downloadable template.
    template_title: str = ""
    template_examples: list[dict] = []
    template_widths: dict[str, int] = {}
    template_help: dict[str, str] = {}
    template_notes: list[str] = []
    template_text_columns: Collection[str] = ()
    template_choices: dict[str, list[str]] = {}

    @property
    def labels(self) -> dict[str, str]:
        return {column.key: column.label for column in self.columns}

    # -- the check ------------------------------------------------------------------------------

    def check(self, *, sheet: Sheet, school, progress: Callable[[int], None]) -> Checked:
        """Check every row of ``sheet`` for ``school``; ``progress`` is called with the rows done.

        Consumes ``sheet.rows`` (empty afterwards): each row's cells are let go once checked, so the
        cells of a 50,000-row file and the rows checked from them are never held whole together."""
        checked = self.checked_class()
        context = self.prepare(sheet=sheet, school=school, checked=checked)
        labels = self.labels
        rows = []
        pending = sheet.rows
        pending.reverse()
        done = 0
        while pending:
            ref, cells = pending.pop()
            done += 1
            for key, value in cells.items():
                if value.__class__ is str and "#" in value and excel_error(value):
                    checked.add_problem(ref, labels[key], f"单元格是 Excel 错误值「{value}」，请修正公式或填入实际内容")
            row = self.check_row(ref, cells, checked, context)
            if row is not None:
                rows.append(row)
            if done % PROGRESS_EVERY == 0:
                progress(done)
        self.match_existing(rows, school, checked, context)
        checked.valid = [row for row in rows if row.row not in checked.invalid_rows]
        checked.problems.sort(key=lambda problem: problem.ref)
        checked.preview = self.preview(checked.valid, sheet)
        return checked

    def prepare(self, *, sheet: Sheet, school, checked: Checked) -> object:
        """Whatever the row checks look up once per file (the school's classes); raises SheetError."""
        return None

    def check_row(self, ref: RowRef, cells: dict, checked: Checked, context) -> object | None:
        raise NotImplementedError

    def match_existing(self, rows: list, school, checked: Checked, context) -> None:
        raise NotImplementedError

    @staticmethod
    def once_in_file(seen: dict, value: object, ref: RowRef, checked: Checked, column: str, what: str) -> None:
        """Report ``value`` when an earlier row of the file already had it."""
        earlier = seen.setdefault(value, ref)
        if earlier != ref:
            place = f"第 {earlier.row} 行" if earlier.sheet_index == ref.sheet_index else str(earlier)
            checked.add_problem(ref, column, f"与{place}的{what}重复")

    # -- the preview ----------------------------------------------------------------------------

    def preview_row(self, row) -> dict:
        """The name and class a preview line shows for a checked row."""
        raise NotImplementedError

    def preview(self, rows: list, sheet: Sheet) -> dict:
        """Counts of what applying would do, the first rows created or updated, and what was read of
        the file: its sheets (read or skipped, and why), the columns used and ignored, the hidden
        rows, and a warning for each watched column the file lacks."""
        created = [row for row in rows if row.existing is None]
        updated = [row for row in rows if row.existing is not None and row.changes]
        listed = sorted(created + updated, key=lambda row: row.row)[:PREVIEW_ROWS]
        hidden = set(sheet.hidden_rows)
        labels = self.labels
        warnings = [
            f"文件中没有「{labels[key]}」列：家访要用到它，这一项不会导入。如名单中有这一列，请检查表头名称。"
            for key in self.watched
            if not sheet.has(key)
        ]
        warnings.extend(
            f"工作表「{report.title}」没有读取：{report.reason}。如果这个工作表也是名单，请补上这一列后重新上传。"
            for report in sheet.sheets
            if not report.read and report.reason.startswith(MISSING_REQUIRED)
        )
        if sheet.hidden_rows:
            warnings.append(
                f"有 {len(sheet.hidden_rows)} 行在 Excel 中被隐藏（常常表示已转出），这些行也会导入，请核对。"
            )
        return {
            "created": len(created),
            "updated": len(updated),
            "unchanged": len(rows) - len(created) - len(updated),
            "rows": [
                {
                    "row": row.row.row,
                    **({"sheet": row.row.sheet} if row.row.sheet else {}),
                    **self.preview_row(row),
                    "action": "新增" if row.existing is None else "更新",
                    "changes": "、".join(row.changes),
                    **({"hidden": True} if row.row in hidden else {}),
                }
                for row in listed
            ],
            "warnings": warnings,
            **sheet.describe(),
        }

    # -- applying -------------------------------------------------------------------------------

    def apply(self, *, checked: Checked, school, acting_user) -> dict:
        raise NotImplementedError

    # -- the template ---------------------------------------------------------------------------

    def template_workbook(self) -> openpyxl.Workbook:
        return build_template(
            columns=self.columns,
            examples=self.template_examples,
            widths=self.template_widths,
            help_texts=self.template_help,
            notes=self.template_notes,
            title=self.template_title,
            text_columns=self.template_text_columns,
            choices=self.template_choices,
        )


# --- the downloadable template -----------------------------------------------------------------

HEADER_FONT = Font(bold=True)
REQUIRED_FONT = Font(bold=True, color="C00000")
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
EXAMPLE_FONT = Font(italic=True, color="808080")
# Rows below the header that get the drop-down lists.
TEMPLATE_ROWS = 1000


def build_template(
    *,
    columns: list[Column],
    examples: list[dict],
    widths: dict[str, int],
    help_texts: dict[str, str],
    notes: list[str],
    title: str,
    text_columns: Collection[str] = (),
    choices: dict[str, list[str]] | None = None,
) -> openpyxl.Workbook:
    """An import template: bold headers (required ones in red, with a note), example rows in grey,
    column widths, drop-down lists, and a 「填写说明」 sheet explaining each column."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for position, column in enumerate(columns, start=1):
        letter = get_column_letter(position)
        cell = sheet.cell(row=1, column=position, value=column.label)
        cell.font = REQUIRED_FONT if column.required else HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center")
        if column.required:
            cell.comment = Comment("必填", "homevisit")
        dimension = sheet.column_dimensions[letter]
        dimension.width = widths.get(column.key, 14)
        if column.key in text_columns:
            # Long digit strings typed into a number cell lose digits (1.39E+10); keep them text.
            dimension.number_format = "@"
        if choices and column.key in choices:
            validation = DataValidation(type="list", formula1=f'"{",".join(choices[column.key])}"', allow_blank=True)
            sheet.add_data_validation(validation)
            validation.add(f"{letter}2:{letter}{TEMPLATE_ROWS}")
        for row, example in enumerate(examples, start=2):
            cell = sheet.cell(row=row, column=position, value=example.get(column.key))
            cell.font = EXAMPLE_FONT
            if column.key in text_columns:
                cell.number_format = "@"
            elif isinstance(cell.value, datetime.date):
                cell.number_format = "yyyy-mm-dd"
    sheet.freeze_panes = "A2"

    guide = workbook.create_sheet("填写说明")
    guide.append(["列名", "是否必填", "填写说明"])
    for cell in guide[1]:
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
    for column in columns:
        guide.append([column.label, "必填" if column.required else "选填", help_texts.get(column.key, "")])
        guide.cell(row=guide.max_row, column=1).font = REQUIRED_FONT if column.required else HEADER_FONT
    guide.append([])
    guide.append(["注意事项"])
    guide.cell(row=guide.max_row, column=1).font = HEADER_FONT
    for number, note in enumerate(notes, start=1):
        guide.append([f"{number}. {note}"])
        guide.merge_cells(start_row=guide.max_row, start_column=1, end_row=guide.max_row, end_column=3)
    guide.column_dimensions["A"].width = 26
    guide.column_dimensions["B"].width = 10
    guide.column_dimensions["C"].width = 90
    for row in guide.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    return workbook
