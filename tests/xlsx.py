"""Real XLSX files for tests, built with openpyxl."""

import io

import openpyxl


def roster_workbook_bytes(header: list[str], rows: list[list], *, title: str = "学生名册") -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def read_workbook(content: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(content))
