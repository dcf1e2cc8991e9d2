"""Reading the XLSX files schools keep (rosters, staff lists) and normalising what clerks type.

The readers here know nothing of students or staff: an importer names its columns with their
aliases, gets back the data rows keyed by column, and reports each problem with its row number,
its column and a reason in Chinese.
"""

import datetime
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.utils.datetime import from_excel

# Header cells are searched for in the first rows: registry exports put a title above them.
HEADER_SEARCH_ROWS = 10
# A real roster expands to a few MB of XML; far more than this is a zip bomb, not a roster.
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_DATA_ROWS = 50_000
# No cell of a roster or a staff list holds more than a few hundred characters. A file with a longer
# one is refused: one huge shared string referenced from every cell would otherwise make each
# cell's checks, and each problem message quoting it, megabytes long (a 10 KB upload, hours of work).
MAX_CELL_CHARS = 500


class SheetError(Exception):
    """The file as a whole cannot be used; the message says why, in Chinese."""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = False

    def matches(self, header: str) -> bool:
        return header == _header_key(self.label) or header in {_header_key(a) for a in self.aliases}


@dataclass(frozen=True)
class Problem:
    row: int
    column: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class Sheet:
    title: str
    header_row: int
    columns: dict[str, int]  # column key -> 0-based position
    rows: list[tuple[int, dict[str, object]]] = field(default_factory=list)  # (Excel row number, values)

    def has(self, key: str) -> bool:
        return key in self.columns


def _header_key(text: object) -> str:
    """Header text as compared: width-normalised, without spaces, brackets' notes or asterisks."""
    value = str(text or "")
    if len(value) > MAX_CELL_CHARS:  # not a header; normalising it would only cost time
        return ""
    value = unicodedata.normalize("NFKC", value)
    value = re.sub(r"\s+", "", value).replace("*", "")
    return re.sub(r"\(.*?\)$", "", value)


def check_xlsx_container(path: Path) -> None:
    """Refuse what is not an XLSX package, or one that would expand to an absurd size."""
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetError("这是旧版 Excel（.xls）文件。请在 Excel 或 WPS 中“另存为”Excel 工作簿（.xlsx）后重新上传。")
    if not magic.startswith(b"PK\x03\x04"):
        raise SheetError("文件不是 Excel 工作簿（.xlsx），无法读取。请上传 .xlsx 格式的文件。")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SheetError("文件已损坏，无法作为 Excel 工作簿打开。请重新导出后上传。") from None
    if "[Content_Types].xml" not in names or not any(name.startswith("xl/") for name in names):
        raise SheetError("文件不是 Excel 工作簿（.xlsx），无法读取。请上传 .xlsx 格式的文件。")
    if expanded > MAX_UNCOMPRESSED_BYTES:
        raise SheetError("文件解压后过大，不像是一份名册。请检查文件后重新上传。")


def read_sheet(path: Path, columns: Iterable[Column]) -> Sheet:
    """Find the sheet whose header row carries every required column and return its data rows."""
    columns = list(columns)
    check_xlsx_container(path)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken package
        raise SheetError("文件已损坏，无法作为 Excel 工作簿打开。请重新导出后上传。") from None
    try:
        best_missing: tuple[str, list[str]] | None = None
        empty_title: str | None = None
        for worksheet in workbook.worksheets:
            # Some exporters write a wrong used range (<dimension ref="A1:A1">); read-only mode
            # would trust it and cut every row to one cell.
            worksheet.reset_dimensions()
            found = _find_header(worksheet, columns)
            if found is None:
                continue
            header_row, positions = found
            missing = [c.label for c in columns if c.required and c.key not in positions]
            if missing:
                if best_missing is None or len(missing) < len(best_missing[1]):
                    best_missing = (worksheet.title, missing)
                continue
            sheet = Sheet(title=worksheet.title, header_row=header_row, columns=positions)
            for number, values in enumerate(
                worksheet.iter_rows(min_row=header_row + 1, values_only=True), start=header_row + 1
            ):
                if all(
                    v is None or (isinstance(v, str) and len(v) <= MAX_CELL_CHARS and not v.strip()) for v in values
                ):
                    continue
                if len(sheet.rows) >= MAX_DATA_ROWS:
                    raise SheetError(f"工作表「{worksheet.title}」超过 {MAX_DATA_ROWS} 行，请按学段拆分后分别上传。")
                cells = {key: values[pos] if pos < len(values) else None for key, pos in positions.items()}
                _check_lengths(worksheet.title, number, cells, columns)
                sheet.rows.append((number, cells))
            if not sheet.rows:
                # An emptied template sheet must not hide the data pasted into another sheet.
                empty_title = empty_title or worksheet.title
                continue
            return sheet
    except SheetError:
        raise
    except Exception:  # a sheet's XML is parsed only while its rows are read: a broken one fails here
        raise SheetError("文件已损坏，无法作为 Excel 工作簿打开。请重新导出后上传。") from None
    finally:
        workbook.close()
    if empty_title:
        raise SheetError(f"工作表「{empty_title}」在表头下面没有数据行。")
    required = "、".join(f"「{c.label}」" for c in columns if c.required)
    if best_missing:
        title, missing = best_missing
        raise SheetError(
            f"工作表「{title}」缺少必填列：{'、'.join(missing)}。请使用下载的模板，或把表头改为模板中的名称。"
        )
    raise SheetError(
        f"没有找到表头行：文件中没有哪个工作表的前 {HEADER_SEARCH_ROWS} 行包含{required}等列。请使用下载的模板。"
    )


def _check_lengths(title: str, number: int, cells: dict[str, object], columns: list[Column]) -> None:
    for column in columns:
        value = cells.get(column.key)
        if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
            raise SheetError(
                f"工作表「{title}」第 {number} 行「{column.label}」列有 {len(value)} 个字，"
                f"超过 {MAX_CELL_CHARS} 个字，不像是名单的内容。请检查这个单元格后重新上传。"
            )


def _find_header(worksheet, columns: list[Column]) -> tuple[int, dict[str, int]] | None:
    best: tuple[int, dict[str, int]] | None = None
    for number, values in enumerate(worksheet.iter_rows(max_row=HEADER_SEARCH_ROWS, values_only=True), start=1):
        positions: dict[str, int] = {}
        for pos, value in enumerate(values):
            key = _header_key(value)
            if not key:
                continue
            for column in columns:
                if column.key not in positions and column.matches(key):
                    positions[column.key] = pos
                    break
        if len(positions) >= 2 and (best is None or len(positions) > len(best[1])):
            best = (number, positions)
    return best


# --- normalising cell values -------------------------------------------------------------------


def clean_text(value: object) -> str:
    """A cell as text: full-width forms folded, spaces trimmed and collapsed, 1.0 read as 1."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime.datetime):
        value = value.date()
    text = unicodedata.normalize("NFKC", str(value))
    return re.sub(r"\s+", " ", text).strip()


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


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)


def parse_date(value: object) -> datetime.date:
    """Dates as clerks type them: 2015-03-08, 2015/3/8, 2015.3.8, 20150308, 2015年3月8日, date cells."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    # An Excel serial day number; 20150308 typed as a number is past this range and read as text.
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value < 2958466:
        return from_excel(value).date()
    text = clean_code(value)
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month, day = (int(part) for part in match.groups())
            try:
                return datetime.date(year, month, day)
            except ValueError:
                raise ValueError(f"「{text}」不是有效日期") from None
    raise ValueError(f"「{text}」不是可识别的日期，请写成 2015-03-08 或 2015/3/8")


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


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
    total = sum(int(digit) * weight for digit, weight in zip(id_number[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != id_number[17]:
        raise ValueError("身份证件号校验位不正确，请核对是否抄错")
    return id_number


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


def parse_yes_no(value: object) -> bool:
    text = clean_text(value).upper()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"「{clean_text(value)}」应填写“是”或“否”")


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
    invalid_rows: set[int] = field(default_factory=set)
    preview: dict = field(default_factory=dict)

    def add_problem(self, row: int, column: str, message: str) -> None:
        self.problems.append(Problem(row=row, column=column, message=message))
        self.invalid_rows.add(row)


PROGRESS_EVERY = 250
