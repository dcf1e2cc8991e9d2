"""ledgers.xlsx, the statistics sheet's writer, on its own: what openpyxl reads back from it."""

import datetime
import io
import zipfile
from decimal import Decimal
from xml.etree import ElementTree

import openpyxl
import pytest

from ledgers.xlsx import CellStyle, Workbook, column_letter

STYLES = (CellStyle(), CellStyle(bold=True, fill="DDEBF7", border=True, horizontal="center"))
PLAIN, HEADER = 0, 1


def saved(workbook: Workbook) -> bytes:
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def reopened(workbook: Workbook) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(saved(workbook)))


def test_column_letters():
    assert [column_letter(n) for n in (1, 26, 27, 52, 703, 16_384)] == ["A", "Z", "AA", "AZ", "AAA", "XFD"]


def test_values_styles_and_layout_read_back():
    workbook = Workbook(STYLES)
    sheet = workbook.add_sheet("表 1", widths=[20, 8], footer="第 &P 页，共 &N 页")
    sheet.print_title_rows = (2, 2)
    sheet.freeze = (3, 2)
    sheet.append([("标题", HEADER)], height=30)
    sheet.merge(1, 1, 1, 2)
    sheet.append([("单位", HEADER), ("人数", HEADER)])
    sheet.append_values(["A & <B>", 12], [PLAIN, PLAIN])
    sheet.append_values([" 前后有空格 ", 0.875], [PLAIN, PLAIN])
    sheet.append_values([Decimal("2.5"), None], [PLAIN, None])
    workbook.add_sheet("第二页").append([("x", PLAIN)])

    book = reopened(workbook)

    assert book.sheetnames == ["表 1", "第二页"]
    ws = book["表 1"]
    assert [[cell.value for cell in row] for row in ws.iter_rows()] == [
        ["标题", None],
        ["单位", "人数"],
        ["A & <B>", 12],
        [" 前后有空格 ", 0.875],
        [2.5, None],
    ]
    assert ws["A2"].font.bold and ws["A2"].border.left.style == "thin" and ws["A2"].fill.fgColor.rgb.endswith("DDEBF7")
    assert ws["A2"].alignment.horizontal == "center"
    assert not ws["A3"].font.bold and ws["A3"].border.left.style is None
    assert {str(merged) for merged in ws.merged_cells.ranges} == {"A1:B1"}
    assert ws.row_dimensions[1].height == 30
    assert ws.column_dimensions["A"].width == 20
    assert ws.freeze_panes == "B3"
    assert ws.print_title_rows == "$2:$2"
    assert ws.print_area == "'表 1'!$A$1:$B$5"
    assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToHeight == 0
    assert ws.oddFooter.center.text == "第 &P 页，共 &N 页"


def test_formula_like_text_is_a_string_with_the_quote_prefix_and_control_characters_are_dropped():
    workbook = Workbook(STYLES)
    sheet = workbook.add_sheet("s")
    for text in ("=1+1", "+86 371", "-2", "@SUM(A1)", "\t=1", "普通\x01文字"):
        sheet.append([(text, HEADER)])

    content = saved(workbook)
    ws = openpyxl.load_workbook(io.BytesIO(content))["s"]

    cells = [row[0] for row in ws.iter_rows()]
    assert [cell.value for cell in cells] == ["=1+1", "+86 371", "-2", "@SUM(A1)", "\t=1", "普通文字"]
    assert all(cell.data_type == "s" for cell in cells)
    assert [cell.quotePrefix for cell in cells] == [True] * 5 + [False]
    assert all(cell.font.bold for cell in cells)  # the quote-prefixed twin keeps the style
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for name in archive.namelist():
            ElementTree.fromstring(archive.read(name))  # noqa: S314 - our own output: every part is well-formed
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")


@pytest.mark.parametrize("value", [True, datetime.date(2026, 5, 1), object()])
def test_a_value_the_sheet_does_not_write_raises_type_error(value):
    sheet = Workbook(STYLES).add_sheet("s")
    with pytest.raises(TypeError):
        sheet.append([(value, PLAIN)])


def test_not_a_number_raises_and_a_bad_sheet_name_is_refused():
    sheet = Workbook(STYLES).add_sheet("s")
    with pytest.raises(ValueError, match="not a number"):
        sheet.append_values([Decimal("NaN")], [PLAIN])
    with pytest.raises(ValueError):
        sheet.append_values([1, 2], [PLAIN])
    with pytest.raises(ValueError):
        Workbook(STYLES).add_sheet("a/b")


def test_a_sheet_name_with_an_apostrophe_is_quoted_in_the_print_titles():
    workbook = Workbook(STYLES)
    sheet = workbook.add_sheet("O'Neil 的表")
    sheet.print_title_rows = (1, 1)
    sheet.append([("x", PLAIN)])

    ws = reopened(workbook).worksheets[0]

    assert ws.title == "O'Neil 的表"
    assert ws.print_title_rows == "$1:$1"
