"""A small XLSX writer for printed report sheets: a few cell styles, text and numbers, merged cells,
column widths, row heights, frozen panes and an A4 page setup. Used by the statistics sheet
(``ledgers.sheet``): the county's 150 schools (two sheets, about 5,700 cells) take about 15 ms of
CPU against 240–400 ms with openpyxl's write-only mode and named styles, and against about 50 ms
for the cells alone with XlsxWriter (docs/benchmarks.md, "The statistics sheet").

It writes the SpreadsheetML parts itself (ECMA-376 Part 1, §18): one ``styles.xml`` with one cell
format per ``CellStyle`` (and a quote-prefixed twin of each), one worksheet part per sheet with
inline strings (no shared-string table), and the print titles and print area as defined names of
``workbook.xml``. A row is turned into its XML when it is added, so memory grows with the text of
the sheet, not with Python objects per cell.

Values: ``str`` (always a string cell, never a formula: text that starts like one (``= + - @``, a
tab or a carriage return) takes the *quote prefix* flag, as when someone types a leading
apostrophe, and shows unchanged), ``int``, ``float``, ``Decimal``, ``None`` (no cell). Anything
else (``bool``, dates) raises ``TypeError``: the report sheets do not write them.
"""

import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO
from xml.sax.saxutils import escape, quoteattr

from schools.exports import FORMULA_PREFIXES

MAX_TEXT = 32_767  # the characters a cell holds
# Characters XML 1.0 cannot carry (openpyxl's ILLEGAL_CHARACTERS_RE): dropped from text.
_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
PAPER_A4 = 9
# Zip level 1: the sheet's XML compresses to about a tenth at level 1 as at 6, in a third of the time.
_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class CellStyle:
    """How a cell looks: font, fill (an RRGGBB colour), a thin black border on all four sides,
    alignment, and a number format (``None``: General)."""

    bold: bool = False
    size: float = 11
    fill: str | None = None
    border: bool = False
    horizontal: str | None = None  # left, center, right
    vertical: str | None = None  # top, center, bottom
    wrap: bool = False
    shrink: bool = False
    number_format: str | None = None


def column_letter(index: int) -> str:
    """1 → A, 27 → AA."""
    letters = ""
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


_COLUMNS = tuple(column_letter(index) for index in range(1, 16_385))  # Excel's 16,384 columns


def _number(value: float | int | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a number a spreadsheet can hold")
    return repr(number)


def text_clean(text: str) -> str:
    """The text as a cell can hold it: control characters XML cannot carry dropped, cut to 32,767
    characters."""
    return _ILLEGAL.sub("", text)[:MAX_TEXT]


@dataclass
class Sheet:
    """One worksheet. Add rows top to bottom with ``append``; ``styles`` index the workbook's
    ``CellStyle`` list. Layout (``widths``, ``print_title_rows``, ``freeze``…) can be set any time
    before the workbook is saved."""

    name: str
    widths: Sequence[float] = ()
    landscape: bool = True
    fit_to_width: bool = True  # one page wide, as many pages down as needed
    centered: bool = True  # horizontally on the page
    # Left, right, top, bottom, header and footer, in inches (the last four are Excel's "normal").
    margins: tuple[float, ...] = (0.5, 0.5, 1.0, 1.0, 0.5, 0.5)
    footer: str = ""  # centre footer, e.g. "第 &P 页，共 &N 页"
    print_title_rows: tuple[int, int] | None = None  # first and last row, 1-based
    freeze: tuple[int, int] | None = None  # (row, column) of the first scrolling cell, 1-based
    _rows: list[str] = field(default_factory=list)
    _merges: list[str] = field(default_factory=list)
    _columns: int = 0
    _styles: int = 0  # how many styles the workbook has (set by Workbook.add_sheet)

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def append(self, cells: Iterable[tuple[object, int] | None], *, height: float | None = None) -> int:
        """Add the next row: ``(value, style)`` per column from A, ``None`` for no cell. Returns the
        row's number (1-based). A value of ``None`` or ``""`` writes a styled empty cell."""
        values: list[object] = []
        styles: list[int | None] = []
        for cell in cells:
            values.append(None if cell is None else cell[0])
            styles.append(None if cell is None else cell[1])
        return self.append_values(values, styles, height=height)

    def append_values(
        self, values: Sequence[object], styles: Sequence[int | None], *, height: float | None = None
    ) -> int:
        """``append`` with the values and their styles in two lists of one length (a style of
        ``None``: no cell), so that a table's rows need no tuple per cell."""
        if len(values) != len(styles):
            raise ValueError(f"{len(values)} values but {len(styles)} styles")
        if len(values) > len(_COLUMNS):
            raise ValueError(f"a sheet holds {len(_COLUMNS)} columns, not {len(values)}")
        number = len(self._rows) + 1
        parts = []
        for letter, value, style in zip(_COLUMNS, values, styles, strict=False):  # _COLUMNS is longer
            if style is None:
                continue
            kind = type(value)  # exact types first: this loop runs for every cell of the sheet
            if kind is int:
                parts.append(f'<c r="{letter}{number}" s="{style + 1}"><v>{value}</v></c>')
            elif kind is float and math.isfinite(value):
                parts.append(f'<c r="{letter}{number}" s="{style + 1}"><v>{value!r}</v></c>')
            elif kind is str and value:
                text = text_clean(value) if _ILLEGAL.search(value) or len(value) > MAX_TEXT else value
                if text.startswith(FORMULA_PREFIXES):
                    style += self._styles  # the quote-prefixed twin
                space = ' xml:space="preserve"' if text != text.strip() or "\n" in text else ""
                parts.append(
                    f'<c r="{letter}{number}" s="{style + 1}" t="inlineStr"><is><t{space}>{escape(text)}</t></is></c>'
                )
            elif value is None or value == "":
                parts.append(f'<c r="{letter}{number}" s="{style + 1}"/>')
            elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                parts.append(f'<c r="{letter}{number}" s="{style + 1}"><v>{_number(value)}</v></c>')
            else:
                raise TypeError(f"cannot write {type(value).__name__} to the sheet: {value!r}")
        self._columns = max(self._columns, len(values))
        attributes = f' ht="{_number(height)}" customHeight="1"' if height is not None else ""
        self._rows.append(f'<row r="{number}"{attributes}>{"".join(parts)}</row>')
        return number

    def merge(self, first_row: int, first_column: int, last_row: int, last_column: int) -> None:
        """Merge a block of cells (1-based, inclusive); the top-left cell shows."""
        self._merges.append(
            f"{column_letter(first_column)}{first_row}:{column_letter(last_column)}{last_row}",
        )

    def last_cell(self) -> str:
        columns = max(self._columns, len(self.widths), 1)
        return f"{column_letter(columns)}{max(len(self._rows), 1)}"

    def _xml(self, *, selected: bool) -> str:
        out = [_XML, f'<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">']
        out.append('<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>' if self.fit_to_width else "<sheetPr/>")
        out.append(f'<dimension ref="A1:{self.last_cell()}"/>')
        view = ' tabSelected="1"' if selected else ""
        if self.freeze:
            row, column = self.freeze
            top_left = f"{column_letter(column)}{row}"
            splits = (f' xSplit="{column - 1}"' if column > 1 else "") + (f' ySplit="{row - 1}"' if row > 1 else "")
            pane = "bottomRight" if row > 1 and column > 1 else ("bottomLeft" if row > 1 else "topRight")
            out.append(
                f'<sheetViews><sheetView workbookViewId="0"{view}>'
                f'<pane{splits} topLeftCell="{top_left}" activePane="{pane}" state="frozen"/>'
                f'<selection pane="{pane}" activeCell="{top_left}" sqref="{top_left}"/>'
                "</sheetView></sheetViews>"
            )
        else:
            out.append(f'<sheetViews><sheetView workbookViewId="0"{view}/></sheetViews>')
        out.append('<sheetFormatPr defaultRowHeight="15"/>')
        if self.widths:
            out.append("<cols>")
            out.extend(
                f'<col min="{index}" max="{index}" width="{_number(width)}" customWidth="1"/>'
                for index, width in enumerate(self.widths, start=1)
            )
            out.append("</cols>")
        out.append("<sheetData>")
        out.extend(self._rows)
        out.append("</sheetData>")
        if self._merges:
            out.append(f'<mergeCells count="{len(self._merges)}">')
            out.extend(f'<mergeCell ref="{ref}"/>' for ref in self._merges)
            out.append("</mergeCells>")
        if self.centered:
            out.append('<printOptions horizontalCentered="1"/>')
        left, right, top, bottom, header, footer = map(_number, self.margins)
        out.append(
            f'<pageMargins left="{left}" right="{right}" top="{top}" bottom="{bottom}"'
            f' header="{header}" footer="{footer}"/>'
        )
        setup = f'paperSize="{PAPER_A4}" orientation="{"landscape" if self.landscape else "portrait"}"'
        if self.fit_to_width:
            setup += ' fitToWidth="1" fitToHeight="0"'
        out.append(f"<pageSetup {setup}/>")
        if self.footer:
            out.append(f"<headerFooter><oddFooter>{escape('&C' + self.footer)}</oddFooter></headerFooter>")
        out.append("</worksheet>")
        return "".join(out)


class Workbook:
    """Sheets in tab order over one list of cell styles; ``save`` writes the package."""

    def __init__(self, styles: Sequence[CellStyle]) -> None:
        self.styles = list(styles)
        self.sheets: list[Sheet] = []

    def add_sheet(self, name: str, **layout) -> Sheet:
        """A new sheet at the end; ``name`` is cut to Excel's 31 characters (it must not hold
        ``[]:*?/\\``)."""
        if any(char in name for char in "[]:*?/\\"):
            raise ValueError(f"a sheet name cannot hold {name!r}")
        sheet = Sheet(name=name[:31], **layout)
        sheet._styles = len(self.styles)
        self.sheets.append(sheet)
        return sheet

    def save(self, target: IO[bytes]) -> None:
        """Write the workbook as an XLSX package to a binary file object."""
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL) as archive:
            archive.writestr("[Content_Types].xml", self._content_types())
            archive.writestr(
                "_rels/.rels",
                f'{_XML}<Relationships xmlns="{_PKG_REL_NS}">'
                f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
                "</Relationships>",
            )
            archive.writestr("xl/workbook.xml", self._workbook())
            archive.writestr("xl/_rels/workbook.xml.rels", self._workbook_rels())
            archive.writestr("xl/styles.xml", self._styles())
            for index, sheet in enumerate(self.sheets, start=1):
                archive.writestr(f"xl/worksheets/sheet{index}.xml", sheet._xml(selected=index == 1))

    def _content_types(self) -> str:
        sheets = "".join(
            f'<Override PartName="/xl/worksheets/sheet{index}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for index in range(1, len(self.sheets) + 1)
        )
        return (
            f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            f"{sheets}</Types>"
        )

    def _workbook(self) -> str:
        sheets = "".join(
            f'<sheet name={quoteattr(sheet.name)} sheetId="{index}" r:id="rId{index}"/>'
            for index, sheet in enumerate(self.sheets, start=1)
        )
        names = []
        for index, sheet in enumerate(self.sheets):
            quoted = "'" + sheet.name.replace("'", "''") + "'"
            last = sheet.last_cell()
            letters = last.rstrip("0123456789")
            names.append(
                f'<definedName name="_xlnm.Print_Area" localSheetId="{index}">'
                f"{escape(quoted)}!$A$1:${letters}${last[len(letters) :]}</definedName>"
            )
        for index, sheet in enumerate(self.sheets):
            if sheet.print_title_rows:
                first, last_row = sheet.print_title_rows
                quoted = "'" + sheet.name.replace("'", "''") + "'"
                names.append(
                    f'<definedName name="_xlnm.Print_Titles" localSheetId="{index}">'
                    f"{escape(quoted)}!${first}:${last_row}</definedName>"
                )
        return (
            f'{_XML}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><workbookPr/>'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f"<sheets>{sheets}</sheets><definedNames>{''.join(names)}</definedNames>"
            '<calcPr calcId="191029"/></workbook>'
        )

    def _workbook_rels(self) -> str:
        rels = [
            f'<Relationship Id="rId{index}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{index}.xml"/>'
            for index in range(1, len(self.sheets) + 1)
        ]
        rels.append(f'<Relationship Id="rId{len(self.sheets) + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>')
        return f'{_XML}<Relationships xmlns="{_PKG_REL_NS}">{"".join(rels)}</Relationships>'

    def _styles(self) -> str:
        """styles.xml: cell format 0 is the default, 1…n the styles, n+1…2n their quote-prefixed
        twins (a cell's ``s`` is its style's index plus one)."""
        formats: dict[str, int] = {}
        fonts: dict[tuple[bool, float], int] = {(False, 11): 0}
        fills: dict[str | None, int] = {None: 0}
        for style in self.styles:
            if style.number_format and style.number_format not in formats:
                formats[style.number_format] = 164 + len(formats)
            fonts.setdefault((style.bold, style.size), len(fonts))
            if style.fill not in fills:
                fills[style.fill] = len(fills) + 1  # 1 is the gray125 pattern every workbook has
        xfs = ['<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>']
        for prefix in ("", ' quotePrefix="1"'):
            for style in self.styles:
                alignment = "".join(
                    f' {name}="{value}"'
                    for name, value in (
                        ("horizontal", style.horizontal),
                        ("vertical", style.vertical),
                        ("wrapText", "1" if style.wrap else None),
                        ("shrinkToFit", "1" if style.shrink else None),
                    )
                    if value
                )
                xfs.append(
                    f'<xf numFmtId="{formats.get(style.number_format or "", 0)}"'
                    f' fontId="{fonts[(style.bold, style.size)]}" fillId="{fills[style.fill]}"'
                    f' borderId="{1 if style.border else 0}" xfId="0"{prefix}'
                    ' applyNumberFormat="1" applyFont="1" applyFill="1" applyBorder="1" applyAlignment="1">'
                    f"<alignment{alignment}/></xf>"
                )
        font_xml = "".join(
            f'<font>{"<b/>" if bold else ""}<sz val="{_number(size)}"/><name val="Calibri"/><family val="2"/></font>'
            for (bold, size) in fonts
        )
        fill_xml = '<fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
        fill_xml += "".join(
            f'<fill><patternFill patternType="solid"><fgColor rgb="00{colour}"/>'
            f'<bgColor rgb="00{colour}"/></patternFill></fill>'
            for colour in fills
            if colour is not None
        )
        thin = '<color rgb="00000000"/>'  # ARGB as openpyxl writes it; the alpha byte is ignored
        borders = (
            "<border><left/><right/><top/><bottom/><diagonal/></border>"
            f'<border><left style="thin">{thin}</left><right style="thin">{thin}</right>'
            f'<top style="thin">{thin}</top><bottom style="thin">{thin}</bottom><diagonal/></border>'
        )
        number_formats = "".join(
            f'<numFmt numFmtId="{number}" formatCode={quoteattr(code)}/>' for code, number in formats.items()
        )
        return (
            f'{_XML}<styleSheet xmlns="{_MAIN_NS}">'
            + (f'<numFmts count="{len(formats)}">{number_formats}</numFmts>' if formats else "")
            + f'<fonts count="{len(fonts)}">{font_xml}</fonts>'
            f'<fills count="{len(fills) + 1}">{fill_xml}</fills>'
            f'<borders count="2">{borders}</borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            '<dxfs count="0"/><tableStyles count="0"/></styleSheet>'
        )
