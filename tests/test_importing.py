"""The sheet reader and the normalisers of ``schools.importing``: what clerks type and how their
spreadsheet programs save it."""

import datetime
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils.datetime import from_excel

from schools import importing
from schools.importing import (
    SheetError,
    check_upload,
    clean_code,
    clean_text,
    id_number_birth_date,
    id_number_gender,
    lost_digits,
    parse_class,
    parse_date,
    parse_gender,
    parse_phone,
    parse_yes_no,
    read_sheet,
    validate_id_number,
)
from students.roster_import import COLUMNS

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(birth: str, sequence: str = "013", *, region: str = "410522") -> str:
    """An ID number with a correct check character; ``birth`` is YYYYMMDD, even if no such day."""
    body = f"{region}{birth}{sequence}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def build_xlsx(path: Path, header: list, rows: list[list], *, title: str = "学生名册", above=(), before=None) -> Path:
    """Save a workbook: ``above`` rows (a title line), the header, then the rows, on a sheet called
    ``title``; ``before`` maps the titles of sheets placed in front of it to their rows."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for sheet_title, sheet_rows in (before or {}).items():
        sheet = workbook.create_sheet(sheet_title)
        for row in sheet_rows:
            sheet.append(row)
    sheet = workbook.create_sheet(title)
    for row in [*above, header, *rows]:
        sheet.append(row)
    workbook.save(path)
    return path


def rewrite_member(path: Path, member: str, change) -> Path:
    """Rewrite one file inside the XLSX package, as another program might have written it."""
    with zipfile.ZipFile(path) as archive:
        contents = [(info, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in contents:
            archive.writestr(info, change(data) if info.filename == member else data)
    return path


ROSTER_HEADER = ["姓名", "学籍号", "班级"]
ROSTER_ROWS = [["张小明", "G123456", "2班"], ["李小红", "G123457", "3班"]]


# --- parse_date ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "2015-03-08",
        "2015/3/8",
        "2015.3.8",
        "20150308",
        "2015年3月8日",
        "2015年03月08日",
        " 2015-3-8 ",
        "２０１５－０３－０８",
    ],
)
def test_dates_typed_the_ways_clerks_type_them_are_read(typed):
    assert parse_date(typed) == datetime.date(2015, 3, 8)


def test_a_date_typed_as_the_number_20150308_is_read():
    assert parse_date(20150308) == datetime.date(2015, 3, 8)
    assert parse_date(20150308.0) == datetime.date(2015, 3, 8)


def test_a_real_date_cell_is_read_as_its_day():
    date_cell = from_excel(42071)  # what openpyxl gives for a cell formatted as a date: a naive datetime
    assert parse_date(date_cell) == datetime.date(2015, 3, 8)
    assert parse_date(datetime.date(2015, 3, 8)) == datetime.date(2015, 3, 8)


def test_an_excel_serial_number_is_read_as_its_day():
    assert parse_date(42071) == datetime.date(2015, 3, 8)
    assert parse_date(42071.0) == datetime.date(2015, 3, 8)


@pytest.mark.parametrize("typed", ["去年三月", "2015-03", "三月八日", "08/03/2015", "", True])
def test_garbage_is_not_a_date_and_the_reason_shows_how_to_write_one(typed):
    with pytest.raises(ValueError, match="不是可识别的日期，请写成 2015-03-08 或 2015/3/8"):
        parse_date(typed)


@pytest.mark.parametrize("typed", ["2015-02-30", "2015/13/1", "20150230", "2015年2月29日"])
def test_a_day_that_does_not_exist_is_not_a_valid_date(typed):
    with pytest.raises(ValueError, match="不是有效日期"):
        parse_date(typed)


# --- ID numbers ---------------------------------------------------------------------------------


def test_valid_id_numbers_pass_including_one_ending_in_x():
    assert validate_id_number("11010519491231002X") == "11010519491231002X"
    boy = id_number("20160308", "013")
    assert validate_id_number(boy) == boy
    assert id_number_gender(boy) == "M"
    assert id_number_gender(id_number("20160308", "024")) == "F"
    assert id_number_birth_date(boy) == datetime.date(2016, 3, 8)


def test_a_lower_case_x_typed_by_a_clerk_passes_once_cleaned():
    assert validate_id_number(clean_code(" 11010519491231002x ")) == "11010519491231002X"


def test_an_id_number_with_a_wrong_check_character_is_refused():
    good = id_number("20160308")
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(ValueError, match="校验位不正确"):
        validate_id_number(wrong)


@pytest.mark.parametrize(
    "typed",
    ["41052220160308013", "4105222016030801300", "410522160308013", "41052220160308013Y", "G10522201603080131"],
)
def test_an_id_number_of_the_wrong_length_or_characters_is_refused(typed):
    with pytest.raises(ValueError, match="应为 18 位"):
        validate_id_number(typed)


@pytest.mark.parametrize("birth", ["20150230", "20151301", "20150000"])
def test_an_id_number_with_an_impossible_birth_date_is_refused(birth):
    with pytest.raises(ValueError, match="出生日期（第 7—14 位）无效"):
        validate_id_number(id_number(birth))


# --- phones, genders, yes/no --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("13912345678", "13912345678"),
        ("139 1234 5678", "13912345678"),
        ("139-1234-5678", "13912345678"),
        ("+86 139 1234 5678", "13912345678"),
        ("+86-13912345678", "13912345678"),
        ("8613912345678", "13912345678"),
        ("１３９\u3000１２３４\u3000５６７８", "13912345678"),
        (13912345678, "13912345678"),
        (13912345678.0, "13912345678"),
        ("0371-12345678", "037112345678"),
        ("(0371)12345678", "037112345678"),
        ("0394 8123456", "03948123456"),
    ],
)
def test_phone_numbers_are_stored_without_spaces_dashes_or_country_code(typed, stored):
    assert parse_phone(typed) == stored


@pytest.mark.parametrize(
    "typed", ["12345", "1391234567", "139123456789", "23912345678", "电话", "无", "+1 415 555 0100"]
)
def test_something_that_is_not_a_phone_number_is_refused(typed):
    with pytest.raises(ValueError, match="不是有效的手机号或固定电话"):
        parse_phone(typed)


@pytest.mark.parametrize(
    ("typed", "gender"),
    [
        ("男", "M"),
        ("女", "F"),
        (" 男 ", "M"),
        ("男性", "M"),
        ("女性", "F"),
        ("m", "M"),
        ("F", "F"),
        (1, "M"),
        ("2", "F"),
    ],
)
def test_genders_are_read(typed, gender):
    assert parse_gender(typed) == gender


@pytest.mark.parametrize("typed", ["未知", "男孩", "3", ""])
def test_something_that_is_not_a_gender_is_refused_with_what_to_write(typed):
    with pytest.raises(ValueError, match="不是有效性别，请填写“男”或“女”"):
        parse_gender(typed)


@pytest.mark.parametrize("typed", ["是", " 是 ", "Y", "yes", "1", 1, True, "√", "有"])
def test_yes_is_read(typed):
    assert parse_yes_no(typed) is True


@pytest.mark.parametrize("typed", ["否", "N", "no", "0", 0, False, "×", "无", "不是", "", None])
def test_no_and_an_empty_cell_are_read_as_no(typed):
    assert parse_yes_no(typed) is False


def test_maybe_is_neither_yes_nor_no():
    with pytest.raises(ValueError, match="「也许」应填写“是”或“否”"):
        parse_yes_no("也许")


# --- grades and classes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "class_name", "expected"),
    [
        ("一年级", "2班", (1, 2)),
        (None, "三年级(2)班", (3, 2)),
        ("", "三年级（2）班", (3, 2)),
        ("初一", "（3）班", (7, 3)),
        (7, "02", (7, 2)),
        ("7", 2, (7, 2)),
        (3.0, 2.0, (3, 2)),
        (None, "大一班", (0, 1)),
        ("小班", "2班", (-2, 2)),
        ("高二", "十二班", (11, 12)),
        ("七年级", "二十一班", (7, 21)),
        ("1年级", "(1)", (1, 1)),
        ("三年级", " 2 班 ", (3, 2)),
    ],
)
def test_classes_are_read_however_the_grade_and_class_are_written(grade, class_name, expected):
    assert parse_class(grade, class_name) == expected


def test_a_class_without_a_grade_says_the_grade_is_missing():
    with pytest.raises(ValueError, match="缺少年级"):
        parse_class(None, "2班")


def test_a_class_name_that_is_not_a_number_is_refused_with_an_example():
    with pytest.raises(ValueError, match="「火箭班」不是可识别的班级，请写成“2班”或“\\(2\\)班”"):
        parse_class("三年级", "火箭班")


def test_a_grade_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="「十三年级」不是可识别的年级"):
        parse_class("十三年级", "1班")


# --- text and codes -----------------------------------------------------------------------------


def test_full_width_digits_and_ideographic_spaces_are_folded_in_text():
    assert clean_text("１２３") == "123"
    assert clean_text("\u3000张\u3000\u3000小明 ") == "张 小明"
    assert clean_text("城关镇\xa0幸福路  1 号") == "城关镇 幸福路 1 号"


def test_codes_lose_every_space_and_are_upper_case():
    assert clean_code(" ｇ４１０５２２\u3000２０１６ ０３０８ ") == "G41052220160308"
    assert clean_code("g123456") == "G123456"


def test_numbers_and_dates_in_cells_read_as_clerks_see_them():
    assert clean_text(None) == ""
    assert clean_text(3.0) == "3"
    assert clean_text(2.5) == "2.5"
    assert clean_code(13912345678.0) == "13912345678"
    assert clean_text(from_excel(42071)) == "2015-03-08"


def test_a_long_number_excel_stored_as_a_float_has_lost_digits():
    assert lost_digits(4.10522201603080e17)
    assert not lost_digits(410522201603080131)  # an exact integer, as programs write it
    assert not lost_digits(13912345678.0)
    assert not lost_digits("410522201603080131")


# --- the container ------------------------------------------------------------------------------


def test_a_csv_file_renamed_xlsx_is_read_as_the_csv_it_is(tmp_path):
    path = tmp_path / "名册.xlsx"
    path.write_text("姓名,学籍号,班级\n张小明,G123456,2班\n", encoding="utf-8")
    assert check_upload(path) == "csv"
    assert [cells for _, cells in read_sheet(path, COLUMNS).rows] == [
        {"name": "张小明", "student_number": "G123456", "class_name": "2班"}
    ]


def test_a_binary_file_that_is_no_spreadsheet_is_refused(tmp_path):
    path = tmp_path / "名册.xlsx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(SheetError, match="文件不是 Excel 工作簿"):
        check_upload(path)


def test_a_damaged_old_xls_file_is_a_damaged_file(tmp_path):
    path = tmp_path / "名册.xls"
    path.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(4096))
    with pytest.raises(SheetError, match="文件已损坏"):
        check_upload(path)


def test_a_truncated_zip_is_a_damaged_file(tmp_path):
    path = build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, ROSTER_ROWS)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(SheetError, match="文件已损坏"):
        check_upload(path)


def test_a_zip_that_is_not_a_spreadsheet_is_refused(tmp_path):
    path = tmp_path / "名册.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<document/>")
    with pytest.raises(SheetError, match="文件不是 Excel 工作簿"):
        check_upload(path)


def test_a_zip_bomb_is_refused_before_it_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "MAX_UNCOMPRESSED_BYTES", 1024 * 1024)
    path = build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, ROSTER_ROWS)
    padding = b"<!--" + b" " * (2 * 1024 * 1024) + b"-->"
    rewrite_member(
        path, "xl/worksheets/sheet1.xml", lambda data: data.replace(b"<sheetData>", padding + b"<sheetData>")
    )
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(SheetError, match="解压后过大"):
        check_upload(path)
    with pytest.raises(SheetError, match="解压后过大"):
        read_sheet(path, COLUMNS)


def test_a_zip_that_understates_its_expanded_size_is_read_no_further_than_it_claims(tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "MAX_UNCOMPRESSED_BYTES", 1024 * 1024)
    path = build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, ROSTER_ROWS)
    padding = b"<!--" + b" " * (2 * 1024 * 1024) + b"-->"
    rewrite_member(
        path, "xl/worksheets/sheet1.xml", lambda data: data.replace(b"<sheetData>", padding + b"<sheetData>")
    )
    # Claim in the central directory that the sheet expands to 100 bytes.
    content = bytearray(path.read_bytes())
    entry = content.index(b"PK\x01\x02")
    while content[entry + 46 : entry + 70] != b"xl/worksheets/sheet1.xml":
        entry = content.index(b"PK\x01\x02", entry + 4)
    content[entry + 24 : entry + 28] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(content))

    check_upload(path)  # believes the claim
    with pytest.raises(SheetError, match="文件已损坏"):
        read_sheet(path, COLUMNS)


# --- read_sheet ---------------------------------------------------------------------------------


def test_the_header_is_found_below_a_title_row(tmp_path):
    path = build_xlsx(
        tmp_path / "名册.xlsx",
        ROSTER_HEADER,
        ROSTER_ROWS,
        above=[["城关第一小学 2025—2026 学年学生名册"], ["填报日期：2025 年 9 月 1 日", None, "单位：人"]],
    )
    sheet = read_sheet(path, COLUMNS)
    assert sheet.header_row == 3
    assert [(ref.row, cells) for ref, cells in sheet.rows] == [
        (4, {"name": "张小明", "student_number": "G123456", "class_name": "2班"}),
        (5, {"name": "李小红", "student_number": "G123457", "class_name": "3班"}),
    ]


def test_the_roster_is_found_on_the_second_sheet_when_the_first_is_something_else(tmp_path):
    path = build_xlsx(
        tmp_path / "名册.xlsx",
        ROSTER_HEADER,
        ROSTER_ROWS,
        title="三年级",
        before={"说明": [["本表由教务处填写"], ["联系人", "王老师"], ["姓名请与户口本一致"]]},
    )
    sheet = read_sheet(path, COLUMNS)
    assert sheet.title == "三年级"
    assert [values["name"] for _, values in sheet.rows] == ["张小明", "李小红"]


def test_an_emptied_template_sheet_does_not_hide_the_data_on_another_sheet(tmp_path):
    path = build_xlsx(
        tmp_path / "名册.xlsx", ROSTER_HEADER, ROSTER_ROWS, title="Sheet2", before={"学生名册": [ROSTER_HEADER]}
    )
    assert read_sheet(path, COLUMNS).title == "Sheet2"


def test_registry_export_aliases_are_understood(tmp_path):
    header = ["学生姓名", "全国学籍号", "身份证号", "所在年级", "班级名称", "联系电话", "留守儿童"]
    path = build_xlsx(
        tmp_path / "名册.xlsx",
        header,
        [["张小明", "G123456", "410522201603080131", "三年级", "2班", "13912345678", "否"]],
    )
    sheet = read_sheet(path, COLUMNS)
    assert sheet.rows[0][1] == {
        "name": "张小明",
        "student_number": "G123456",
        "id_number": "410522201603080131",
        "grade": "三年级",
        "class_name": "2班",
        "guardian_phone": "13912345678",
        "left_behind": "否",
    }


def test_headers_with_spaces_asterisks_notes_and_full_width_brackets_are_understood(tmp_path):
    header = ["*姓 名", "学籍号（必填）", "*班级", "出生日期(yyyy-mm-dd)", "备注"]
    path = build_xlsx(tmp_path / "名册.xlsx", header, [["张小明", "G123456", "2班", "2016-03-08", "转入"]])
    sheet = read_sheet(path, COLUMNS)
    assert sheet.columns == {"name": 0, "student_number": 1, "class_name": 2, "birth_date": 3}


def test_blank_rows_are_skipped_and_rows_keep_their_excel_numbers(tmp_path):
    rows = [ROSTER_ROWS[0], [None, None, None], ["", "  ", None], ROSTER_ROWS[1]]
    sheet = read_sheet(build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, rows), COLUMNS)
    assert [ref.row for ref, _ in sheet.rows] == [2, 5]


def test_a_short_row_reads_its_missing_cells_as_empty(tmp_path):
    sheet = read_sheet(build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, [["张小明", "G123456"]]), COLUMNS)
    assert [(ref.row, cells) for ref, cells in sheet.rows] == [
        (2, {"name": "张小明", "student_number": "G123456", "class_name": None})
    ]


def test_a_file_with_a_wrong_used_range_is_still_read_in_full(tmp_path):
    path = build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, ROSTER_ROWS)
    rewrite_member(
        path,
        "xl/worksheets/sheet1.xml",
        lambda data: re.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1:A1"/>', data),
    )
    sheet = read_sheet(path, COLUMNS)
    assert [values for _, values in sheet.rows] == [
        {"name": "张小明", "student_number": "G123456", "class_name": "2班"},
        {"name": "李小红", "student_number": "G123457", "class_name": "3班"},
    ]


def test_a_sheet_with_only_a_header_has_no_data_rows(tmp_path):
    path = build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, [])
    with pytest.raises(SheetError, match="^工作表「学生名册」在表头下面没有数据行。$"):
        read_sheet(path, COLUMNS)


def test_a_sheet_without_a_required_column_names_the_missing_column(tmp_path):
    path = build_xlsx(tmp_path / "名册.xlsx", ["姓名", "性别", "班级"], [["张小明", "男", "2班"]])
    with pytest.raises(SheetError, match="工作表「学生名册」缺少必填列：学籍号。请使用下载的模板"):
        read_sheet(path, COLUMNS)


def test_a_workbook_without_a_roster_header_says_which_columns_are_expected(tmp_path):
    path = build_xlsx(tmp_path / "名册.xlsx", ["教师", "手机号", "任教学科"], [["王老师", "13912345678", "语文"]])
    with pytest.raises(SheetError, match="没有找到表头行.*「姓名」、「学籍号」、「班级」"):
        read_sheet(path, COLUMNS)


def test_a_sheet_whose_xml_is_broken_is_a_damaged_file_not_a_crash(tmp_path):
    path = build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, ROSTER_ROWS)
    rewrite_member(path, "xl/worksheets/sheet1.xml", lambda data: data[: len(data) // 2])
    with pytest.raises(SheetError, match="文件已损坏"):
        read_sheet(path, COLUMNS)


def test_a_sheet_with_too_many_rows_asks_for_the_file_to_be_split(tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "MAX_DATA_ROWS", 1)
    path = build_xlsx(tmp_path / "名册.xlsx", ROSTER_HEADER, ROSTER_ROWS)
    with pytest.raises(SheetError, match="超过 1 行，请按学段拆分"):
        read_sheet(path, COLUMNS)


def test_every_invisible_character_unicode_knows_is_removed_from_cells():
    import unicodedata

    from schools.importing import normalise_text

    invisible = [
        chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cf", "Cc") and not re.match(r"\s", chr(c))
    ]
    assert len(invisible) > 150
    assert normalise_text("王" + "".join(invisible) + "明") == "王明"
