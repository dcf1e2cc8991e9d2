"""The one export layer: XLSX (write-only) and CSV from the same row generator, with formula text
neutralised, dates in local time, and the header styled and frozen."""

import csv
import datetime
import io
import os
import zoneinfo

import openpyxl
import pytest

from schools.exports import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE, neutralise, workbook_response, write_csv, write_xlsx

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
VISITED = datetime.datetime(2026, 5, 20, 0, 30, tzinfo=SHANGHAI)  # still 19 May in UTC


def _rows():
    yield ["姓名", "备注", "人数", "时间"]
    yield ["王小明", '=HYPERLINK("http://evil.example","点我")', 3, VISITED]
    yield ["李小红", "+86 138", -2, None]
    yield ["-减号", "@SUM(A1)", 0, datetime.date(2026, 6, 1)]
    yield ["\t制表符", "\r回车", 1.5, ""]
    yield ["普通文字", "中间有=号不算", None, "含\x07响铃符"]


def _read_xlsx(export) -> openpyxl.Workbook:
    export.file.seek(0)
    return openpyxl.load_workbook(io.BytesIO(export.file.read()))


def _read_csv(export) -> list[list[str]]:
    export.file.seek(0)
    raw = export.file.read()
    assert raw.startswith("\ufeff".encode())  # the BOM that makes Excel read UTF-8
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (-1, -1),
        (None, None),
    ],
)
def test_neutralise_prefixes_text_that_starts_like_a_formula(value, expected):
    assert neutralise(value) == expected


def test_xlsx_has_the_header_then_the_rows_with_formula_text_neutralised():
    export = write_xlsx(_rows(), filename="测试.xlsx", sheet_title="测试表")

    assert export.rows == 5
    assert export.content_type == XLSX_CONTENT_TYPE
    sheet = _read_xlsx(export)["测试表"]
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == ("姓名", "备注", "人数", "时间")
    assert values[1][0] == "王小明"
    assert values[1][1] == '\'=HYPERLINK("http://evil.example","点我")'
    assert values[1][2] == 3
    assert values[2][1] == "'+86 138"
    assert values[2][2] == -2  # numbers stay numbers
    assert values[3][0] == "'-减号"
    assert values[3][1] == "'@SUM(A1)"
    assert values[4][0] == "'\t制表符"
    assert values[4][1].startswith("'")  # XML reads a lone CR back as LF
    assert values[5][1] == "中间有=号不算"
    assert values[5][3] == "含响铃符"  # a control character XLSX cannot hold is dropped, not an error
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f", f"{cell.coordinate} is a live formula"


def test_xlsx_writes_aware_datetimes_in_local_time_as_real_dates():
    sheet = _read_xlsx(write_xlsx(_rows(), filename="t.xlsx")).active

    assert sheet["D2"].value == VISITED.replace(tzinfo=None)  # Excel holds wall-clock time
    assert sheet["D2"].number_format == "yyyy-mm-dd hh:mm"
    assert sheet["D4"].value == datetime.datetime.combine(datetime.date(2026, 6, 1), datetime.time())
    assert sheet["D3"].value is None


def test_xlsx_header_is_bold_frozen_and_columns_have_widths():
    export = write_xlsx(_rows(), filename="t.xlsx", widths=[None, 40])
    sheet = _read_xlsx(export).active

    assert all(cell.font.bold for cell in sheet[1])
    assert all(not cell.font.bold for cell in sheet[2])
    assert sheet.freeze_panes == "A2"
    # Excel shows the width asked for; the file stores it with the cell padding added (40.71)
    assert abs(sheet.column_dimensions["B"].width - 40) < 1
    assert sheet.column_dimensions["A"].width >= 8  # from the header when not given
    assert sheet.column_dimensions["D"].width >= 8


def test_xlsx_with_only_a_header_counts_no_rows():
    export = write_xlsx(iter([["甲", "乙"]]), filename="t.xlsx")

    assert export.rows == 0
    assert [c.value for c in _read_xlsx(export).active[1]] == ["甲", "乙"]


def test_xlsx_response_is_an_attachment_with_the_chinese_file_name(db):  # closing a response signals the db
    response = write_xlsx(_rows(), filename="家访记录.xlsx").response()

    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    assert "attachment" in response["Content-Disposition"]
    assert "%E5%AE%B6%E8%AE%BF" in response["Content-Disposition"]  # 家访, RFC 5987-encoded
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert workbook.active["A2"].value == "王小明"
    response.close()


def test_csv_from_the_same_rows_is_utf8_with_bom_and_neutralised():
    export = write_csv(_rows(), filename="测试.csv")

    assert export.rows == 5
    assert export.content_type == CSV_CONTENT_TYPE
    rows = _read_csv(export)
    assert rows[0] == ["姓名", "备注", "人数", "时间"]
    assert rows[1] == ["王小明", '\'=HYPERLINK("http://evil.example","点我")', "3", "2026-05-20 00:30"]
    assert rows[2] == ["李小红", "'+86 138", "-2", ""]
    assert rows[3] == ["'-减号", "'@SUM(A1)", "0", "2026-06-01"]
    assert rows[4][:2] == ["'\t制表符", "'\r回车"]


def test_a_full_workbook_downloads_unchanged(db):
    workbook = openpyxl.Workbook()
    workbook.active.title = "模板"
    workbook.active["A1"] = "姓名"
    workbook.active["A1"].font = openpyxl.styles.Font(bold=True)

    response = workbook_response(workbook, filename="模板.xlsx")

    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    loaded = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert loaded["模板"]["A1"].value == "姓名"
    assert loaded["模板"]["A1"].font.bold
    response.close()


def test_a_failing_row_generator_leaves_no_file_open():
    def broken():
        yield ["甲"]
        yield ["1"]
        raise RuntimeError("database went away")

    def open_files() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    before = open_files()
    with pytest.raises(RuntimeError):
        write_xlsx(broken(), filename="t.xlsx")
    assert open_files() <= before  # the workbook's file and the sheet's own temporary rows are closed too
    with pytest.raises(RuntimeError):
        write_csv(broken(), filename="t.csv")


def test_xlsx_cuts_text_at_excels_limit_and_writes_choices_and_decimals_as_plain_values():
    from decimal import Decimal

    from visits.models import Method

    rows = iter([["说明", "方式", "金额"], ["字" * 40_000, Method.IN_HOME, Decimal("12.50")]])
    sheet = _read_xlsx(write_xlsx(rows, filename="t.xlsx")).active

    assert sheet["A2"].value == "字" * 32_767  # Excel holds no more in a cell; the row is not lost
    assert sheet["B2"].value == str(Method.IN_HOME.value)
    assert sheet["C2"].value == 12.5


def test_xlsx_refuses_two_columns_with_one_label():
    with pytest.raises(ValueError, match="duplicate"):
        write_xlsx(iter([["姓名", "姓名"], ["甲", "乙"]]), filename="t.xlsx")
