"""The statistics sheet's writer on its own (``ledgers.sheet.statistics_sheet_write``, XlsxWriter):
text that a spreadsheet would read as something else stays the text it is, read back with openpyxl."""

import datetime

import openpyxl

from ledgers.models import UnitStatistics
from ledgers.sheet import SHEET_FIELDS, SheetHeading, SheetUnit, StatisticsSheet, statistics_sheet_write

HEADER_ROW = 4


def unit(name: str) -> SheetUnit:
    return SheetUnit._make(name if field == "name" else {} if field == "categories" else 0 for field in SHEET_FIELDS)


def written(*names: str, contact_phone: str = "") -> openpyxl.Workbook:
    total = UnitStatistics(name="示例县", computed_at=datetime.datetime(2026, 5, 20, tzinfo=datetime.UTC))
    heading = SheetHeading(
        unit_name="示例县",
        contact_name="张三",
        contact_phone=contact_phone,
        day=datetime.date(2026, 5, 20),
        campaign_name="=2026 春季",
        period_label="全年",
        computed_at=total.computed_at,
    )
    export = statistics_sheet_write(
        StatisticsSheet(heading=heading, units=[unit(name) for name in names], total=total), filename="x.xlsx"
    )
    with export.file:
        return openpyxl.load_workbook(export.file)


def test_names_that_look_like_numbers_links_or_formulas_stay_text():
    names = ["1234", "http://evil.example/", "-1", "=1+1", "bad\x01name\x1f"]
    ws = written(*names).worksheets[0]

    cells = [ws.cell(HEADER_ROW + 1 + index, 1) for index in range(len(names))]
    assert [cell.value for cell in cells] == ["1234", "http://evil.example/", "-1", "=1+1", "badname"]
    assert all(cell.data_type == "s" for cell in cells)
    assert [bool(cell.quotePrefix) for cell in cells] == [False, False, True, True, False]
    assert not ws._hyperlinks and not cells[1].hyperlink
    # A merged heading line keeps its text too: the campaign's name starts like a formula.
    period_line = ws.cell(3, 1)
    assert period_line.value.startswith("=2026 春季") and period_line.data_type == "s" and period_line.quotePrefix


def test_an_empty_sheet_still_has_its_layout():
    book = written()
    for ws in book.worksheets:
        assert ws.page_setup.fitToWidth == 1 and ws.page_setup.fitToHeight == 0
        assert ws.print_area and ws.freeze_panes
    assert book.worksheets[0].cell(HEADER_ROW + 1, 1).value == "合计"
