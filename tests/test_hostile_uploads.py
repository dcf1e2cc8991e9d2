"""Hostile uploads: request bodies far past every limit, zip bombs and XML tricks disguised as
rosters, formulas in the cells of an import and in the text of every export, and files that only
pretend to be photos. Each is refused with a reason in Chinese, or made harmless, in bounded time
and memory — and nothing is stored for what is refused."""

import datetime
import io
import random
import struct
import time
import tracemalloc
import zipfile
import zlib

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from ledgers.statistics import statistics_compute
from schools.exports import FORMULA_PREFIXES
from schools.importing import MAX_UNCOMPRESSED_BYTES
from schools.models import ImportJob, Phase
from students.models import Guardian, Student
from tests import factories
from visits.models import Attachment, Method, Suggestion, Visit

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MB = 1024 * 1024
FORMULAS = [
    '=HYPERLINK("http://evil.example","点我")',
    "=1+1",
    "+cmd|' /C calc'!A0",
    "@SUM(1)",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture
def phase(world):
    return factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)


def visit_form(world, **overrides) -> dict:
    data = {
        "visited_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "method": "phone",
        "students": [str(world.student.pk)],
        "contents": ["learning"],
        "situation": "孩子在家按时完成作业，家长关心学习。",
        "integrity_declared": "on",
        "suggestions-TOTAL_FORMS": "0",
        "suggestions-INITIAL_FORMS": "0",
        "action": "submit",
    }
    return data | overrides


def stored_files(settings) -> list:
    root = settings.PRIVATE_FILES_ROOT
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def nothing_stored(settings) -> None:
    assert not Visit.objects.exists()
    assert not Attachment.objects.exists()
    assert not ImportJob.objects.exists()
    assert stored_files(settings) == []


# --- bodies past every limit -------------------------------------------------------------------


class StreamedBody:
    """A request body made as it is read (never held whole in memory): ``head``, zeros up to
    ``size``, then ``tail``. Counts what the server read."""

    def __init__(self, head: bytes, size: int, tail: bytes = b""):
        self.length = size
        self.read_bytes = 0
        self.head, self.tail = head, tail
        self.zeros = size - len(head) - len(tail)

    def read(self, size: int = -1, /) -> bytes:
        wanted = self.length - self.read_bytes if size is None or size < 0 else size
        out = bytearray()
        while len(out) < wanted:
            room = wanted - len(out)
            if self.head:
                out += self.head[:room]
                self.head = self.head[room:]
            elif self.zeros:
                n = min(self.zeros, room, 64 * 1024)
                out += bytes(n)
                self.zeros -= n
            elif self.tail:
                out += self.tail[:room]
                self.tail = self.tail[room:]
            else:
                break
        self.read_bytes += len(out)
        return bytes(out)

    def readline(self, size: int = -1, /) -> bytes:
        return self.read(size)


BOUNDARY = "hostile-boundary"


def multipart_file_body(fields: dict[str, str], file_field: str, file_name: str, size: int) -> StreamedBody:
    """A multipart body with form fields and one file of ``size`` bytes of zeros, streamed."""
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{file_name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return StreamedBody(head, len(head) + size + len(tail), tail)


def post_streamed(client, path: str, body: StreamedBody, content_type: str):
    return client.request(
        REQUEST_METHOD="POST",
        PATH_INFO=path,
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH=str(body.length),
        **{"wsgi.input": body},
    )


def assert_chinese_refusal_page(response) -> None:
    assert response.status_code == 400
    page = response.content.decode()
    assert "提交的内容无法处理" in page and "没有保存任何数据" in page


@pytest.mark.parametrize("size", [200 * MB, 2048 * MB])
def test_a_photo_of_hundreds_of_megabytes_is_refused_before_it_is_read(world, login, phase, settings, size):
    body = multipart_file_body(
        {"visited_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "situation": "已走访"},
        "photos",
        "photo.jpg",
        size,
    )
    started = time.monotonic()
    response = post_streamed(
        login(world.teacher), reverse("visit_create"), body, f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert_chinese_refusal_page(response)
    assert body.read_bytes < MB  # refused on its declared length, not after writing it to disk
    assert time.monotonic() - started < 5
    nothing_stored(settings)


def test_a_roster_of_two_hundred_megabytes_is_refused_before_it_is_read(world, login, settings):
    body = multipart_file_body({}, "file", "名册.xlsx", 200 * MB)
    response = post_streamed(
        login(world.school_admin), reverse("roster_import_upload"), body, f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert_chinese_refusal_page(response)
    assert body.read_bytes < MB
    nothing_stored(settings)


def test_two_hundred_megabytes_of_form_fields_are_refused_before_they_are_read(world, login, phase, settings):
    body = StreamedBody(b"situation=", 200 * MB)
    response = post_streamed(login(world.teacher), reverse("visit_create"), body, "application/x-www-form-urlencoded")
    assert_chinese_refusal_page(response)
    assert body.read_bytes == 0
    nothing_stored(settings)


def test_a_photo_over_its_own_limit_is_refused_by_the_form_which_keeps_what_was_typed(world, login, phase, settings):
    fields = visit_form(world) | {"students": str(world.student.pk), "contents": "learning"}
    body = multipart_file_body(fields, "photos", "photo.jpg", 12 * MB)
    response = post_streamed(
        login(world.teacher), reverse("visit_create"), body, f"multipart/form-data; boundary={BOUNDARY}"
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "「photo.jpg」有 12.0 MB，超过 10 MB 的上限" in page and "其他内容已保留" in page
    assert "孩子在家按时完成作业" in page
    nothing_stored(settings)


def test_an_import_file_over_its_limit_is_refused_on_the_upload_page(world, login, settings):
    body = multipart_file_body({}, "file", "名册.xlsx", 12 * MB)
    response = post_streamed(
        login(world.school_admin), reverse("roster_import_upload"), body, f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert response.status_code == 200
    assert "文件大小为 12.0 MB，超过 10 MB 的上限" in response.content.decode()
    nothing_stored(settings)


def test_too_many_fields_or_files_or_a_broken_multipart_body_get_the_chinese_400_page(world, login, phase, settings):
    client = login(world.teacher)
    many_fields = "&".join(f"f{n}=x" for n in range(1100))
    assert_chinese_refusal_page(
        client.post(reverse("visit_create"), many_fields, content_type="application/x-www-form-urlencoded")
    )
    tiny = [SimpleUploadedFile(f"{n}.jpg", b"x") for n in range(120)]
    assert_chinese_refusal_page(client.post(reverse("visit_create"), {**visit_form(world), "photos": tiny}))
    broken = b'--nope\r\nContent-Disposition: form-data; name="situation"\r\n\r\nx'
    assert_chinese_refusal_page(
        client.post(reverse("visit_create"), broken, content_type="multipart/form-data; boundary=")
    )
    nothing_stored(settings)


# --- zip bombs and XML tricks disguised as XLSX -------------------------------------------------

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PACKAGE_REL}">'
        f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{REL}">'
        '<sheets><sheet name="学生名册" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PACKAGE_REL}">'
        f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
    ),
}
ROSTER_HEADER = ["姓名", "性别", "学籍号", "年级", "班级", "家庭住址"]


def shared_strings(strings: list[str], doctype: str = "") -> str:
    items = "".join(f"<si><t>{text}</t></si>" for text in strings)
    return f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<sst xmlns="{MAIN}">{items}</sst>'


def sheet_xml(rows: list[str]) -> str:
    data = "".join(rows)
    return f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}"><sheetData>{data}</sheetData></worksheet>'


def string_row(number: int, indexes: list[int]) -> str:
    cells = "".join(f'<c r="{chr(65 + i)}{number}" t="s"><v>{index}</v></c>' for i, index in enumerate(indexes))
    return f'<row r="{number}">{cells}</row>'


class Member:
    """One part of a handmade ZIP archive: its deflated bytes, and the sizes its headers declare."""

    def __init__(self, name: str, deflated: bytes, crc: int, size: int, declared_size: int | None = None):
        self.name = name.encode()
        self.deflated = deflated
        self.crc = crc
        self.size = size if declared_size is None else declared_size

    @classmethod
    def of(cls, name: str, content: str | bytes) -> "Member":
        data = content.encode() if isinstance(content, str) else content
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        return cls(name, compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data))

    @classmethod
    def bomb(cls, name: str, megabytes: int, *, declared_size: int | None = None) -> "Member":
        """``megabytes`` of spaces in a few hundred KB: one megabyte deflated once (a full flush resets
        the compressor, so each repetition deflates to the same bytes), repeated."""
        chunk = b" " * MB
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
        final = compressor.flush()
        crc = 0
        for _ in range(megabytes):
            crc = zlib.crc32(chunk, crc)
        return cls(name, block * megabytes + final, crc, megabytes * MB, declared_size)


def zip_archive(members: list[Member]) -> bytes:
    """A ZIP archive written by hand, so that a member's declared size can differ from its content."""
    out = io.BytesIO()
    central = io.BytesIO()
    for member in members:
        offset = out.tell()
        sizes = (member.crc, len(member.deflated), member.size)
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, *sizes, len(member.name), 0))
        out.write(member.name + member.deflated)
        central.write(
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, *sizes, len(member.name), 0, 0, 0, 0, 0, offset
            )
        )
        central.write(member.name)
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), central.tell(), start, 0))
    return out.getvalue()


def xlsx_of(sheet: Member | str, strings: Member | str) -> bytes:
    parts = [Member.of(name, content) for name, content in XLSX_PARTS.items()]
    for name, part in (("xl/worksheets/sheet1.xml", sheet), ("xl/sharedStrings.xml", strings)):
        parts.append(part if isinstance(part, Member) else Member.of(name, part))
    return zip_archive(parts)


def upload_roster(client, content: bytes, name: str = "名册.xlsx"):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(reverse("roster_import_upload"), {"file": SimpleUploadedFile(name, content, XLSX)})


def measured(action):
    """Run ``action``; return its result, the CPU seconds this process spent on it (not wall time:
    an expanded bomb costs CPU whatever else the machine runs, a busy machine only wall time) and
    the peak of the memory it allocated."""
    tracemalloc.start()
    started = time.process_time()
    try:
        result = action()
        return result, time.process_time() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_handmade_archives_are_real_xlsx_files():
    """The helpers below build what they claim: a workbook openpyxl reads like any other."""
    content = xlsx_of(
        sheet_xml([string_row(1, [0, 1]), string_row(2, [2, 3])]), shared_strings(["姓名", "学籍号", "王小明", "G1"])
    )
    workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    assert [list(row) for row in workbook.active.iter_rows(values_only=True)] == [["姓名", "学籍号"], ["王小明", "G1"]]
    bomb = zipfile.ZipFile(io.BytesIO(zip_archive([Member.bomb("big.xml", 3)])))
    assert bomb.read("big.xml") == b" " * (3 * MB)


def test_a_zip_bomb_disguised_as_a_roster_is_refused_at_once_without_being_expanded(world, login, settings):
    megabytes = MAX_UNCOMPRESSED_BYTES // MB + 56
    sheet = Member.bomb("xl/worksheets/sheet1.xml", megabytes)
    content = xlsx_of(sheet, shared_strings(ROSTER_HEADER))
    assert len(content) < MB < megabytes * MB  # a small file that expands past the limit
    client = login(world.school_admin)
    before = (Student.objects.count(), Guardian.objects.count())

    response, seconds, peak = measured(lambda: upload_roster(client, content))

    assert response.status_code == 200
    assert "文件解压后过大，不像是一份名册" in response.content.decode()
    assert seconds < 5 and peak < 20 * MB
    assert (Student.objects.count(), Guardian.objects.count()) == before
    nothing_stored(settings)


def test_a_zip_bomb_whose_headers_lie_about_its_size_fails_as_a_broken_file_in_bounded_time(world, login, settings):
    """Headers that declare a few KB pass the size check; reading stops at the declared size and
    the checksum then fails, so the job ends with a Chinese message after reading a few KB."""
    sheet = Member.bomb("xl/worksheets/sheet1.xml", 256, declared_size=4096)
    content = xlsx_of(sheet, shared_strings(ROSTER_HEADER))
    client = login(world.school_admin)

    response, seconds, peak = measured(lambda: upload_roster(client, content))

    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    assert "文件已损坏" in job.error and job.error in client.get(response.url).content.decode()
    assert seconds < 5 and peak < 50 * MB
    assert not Student.objects.exclude(pk__in=[world.student.pk, world.other_student.pk, world.plain_student.pk])
    assert stored_files(settings) == []


BILLION_LAUGHS = (
    '<!DOCTYPE sst [<!ENTITY a "哈哈哈哈哈哈哈哈哈哈">'
    + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(9))
    + "]>"
)


@pytest.mark.parametrize(
    ("case", "doctype", "name"),
    [
        ("billion laughs", BILLION_LAUGHS, "&j;"),
        ("external entity", '<!DOCTYPE sst [<!ENTITY e SYSTEM "file:///etc/passwd">]>', "&e;"),
        ("external DTD", '<!DOCTYPE sst SYSTEM "http://evil.example/x.dtd">', "王小明"),
    ],
)
def test_xml_entity_tricks_in_a_roster_are_not_expanded_and_read_nothing_from_the_server(
    world, login, settings, case, doctype, name
):
    strings = shared_strings([*ROSTER_HEADER, name, "男", "G20160901001", "三年级", "2班", "幸福路 1 号"], doctype)
    content = xlsx_of(sheet_xml([string_row(1, [0, 1, 2, 3, 4, 5]), string_row(2, [6, 7, 8, 9, 10, 11])]), strings)
    client = login(world.school_admin)

    response, seconds, peak = measured(lambda: upload_roster(client, content))

    assert seconds < 5 and peak < 50 * MB, case
    job = ImportJob.objects.get()
    page = client.get(reverse("roster_import_job", args=[job.public_id])).content.decode()
    assert "root:" not in page and "root:" not in str(job.preview) and "root:" not in str(job.problems)
    assert "哈哈哈哈哈哈哈哈哈哈哈" not in str(job.preview)
    if job.status == ImportJob.Status.FAILED:
        assert "文件已损坏" in job.error
    else:  # an external DTD is simply not fetched
        assert job.preview["rows"][0]["name"] == "王小明", case


def test_one_huge_shared_string_in_every_cell_is_refused_quickly_with_its_row_and_column(world, login, settings):
    """A 10 KB file whose every cell points at one string of a million characters: checking each
    cell, and quoting it in each problem, once took minutes and gigabytes for 300 rows."""
    strings = shared_strings([*ROSTER_HEADER, "很" * 1_000_000])
    rows = [string_row(1, [0, 1, 2, 3, 4, 5])] + [string_row(n, [6] * 6) for n in range(2, 302)]
    content = xlsx_of(sheet_xml(rows), strings)
    assert len(content) < 20 * 1024
    client = login(world.school_admin)

    response, seconds, peak = measured(lambda: upload_roster(client, content))

    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith("工作表「学生名册」第 2 行「姓名」列有 1000000 个字，超过 500 个字")
    assert seconds < 15 and peak < 200 * MB
    assert stored_files(settings) == []


# --- formulas: imported as text, exported neutralised --------------------------------------------

ROSTER_COLUMNS = ["姓名", "性别", "学籍号", "年级", "班级", "家庭住址", "监护人姓名", "监护人联系电话"]


def formula_roster() -> bytes:
    """Names, addresses and guardians' names that start like formulas, typed as text (a string cell,
    as a clerk's leading apostrophe leaves it); a real formula cell with the value Excel computed
    for it; and formula text in the 学籍号 and phone columns, which must be refused."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "学生名册"
    sheet.append(ROSTER_COLUMNS)
    for n, text in enumerate(FORMULAS, start=1):
        sheet.append([text, "男", f"G2016090100{n}", "三年级", "2班", text, text, f"1390000000{n}"])
    sheet.append(["公式学生", "男", "=1+1", "三年级", "2班", "幸福路", "", "=1+1"])
    sheet.append(["计算值", "男", "G20160901099", "三年级", "2班", "幸福路", "", "13900000099"])
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, never a formula, whatever it starts with
    buffer = io.BytesIO()
    workbook.save(buffer)
    # The last row's name as a real formula cell with its cached value, as Excel saves it.
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        parts = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    row = len(FORMULAS) + 3
    start = xml.index(f'<c r="A{row}"')
    end = xml.index("</c>", start) + len("</c>")
    parts["xl/worksheets/sheet1.xml"] = (
        xml[:start] + f'<c r="A{row}" t="str"><f>HYPERLINK("http://evil.example","点我")</f><v>点我</v></c>' + xml[end:]
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_formulas_in_a_roster_are_imported_as_plain_text_or_refused_by_column(world, login, settings):
    client = login(world.school_admin)
    response = upload_roster(client, formula_roster())
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.VALIDATED, job.error
    problems = {(p["row"], p["column"]): p["message"] for p in job.problems}
    formula_row = len(FORMULAS) + 2
    assert "不是有效的学籍号" in problems[(formula_row, "学籍号")]
    assert "不是有效的手机号或固定电话" in problems[(formula_row, "监护人联系电话")]
    assert not Student.objects.filter(name__in=FORMULAS).exists()  # nothing before confirming

    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post(reverse("roster_import_confirm", args=[job.public_id]), {"skip_invalid": "1"})
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.error
    imported = {s.student_number: s for s in Student.objects.filter(student_number__startswith="G20160901")}
    for n, text in enumerate(FORMULAS, start=1):
        student = imported[f"G2016090100{n}"]
        # Stored as the text it is (spaces folded as for every cell), never evaluated.
        expected = " ".join(text.split())
        assert (student.name, student.address, student.guardians.get().name) == (expected,) * 3
    assert imported["G20160901099"].name == "点我"  # the value the clerk saw, not the formula
    assert not Student.objects.filter(student_number="=1+1").exists()
    assert response.status_code == 302


def exported_cells(content: bytes):
    """Every cell of every sheet of an exported workbook, and the raw XML of its sheets."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheets_xml = [archive.read(name) for name in archive.namelist() if name.startswith("xl/worksheets/")]
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    cells = [cell for sheet in workbook.worksheets for row in sheet.iter_rows() for cell in row]
    return cells, sheets_xml


def assert_no_live_formula(content: bytes, *, expect: list[str]) -> None:
    """No cell is a formula, and none shows text that a spreadsheet would run when the cell is
    edited: such text carries a leading apostrophe (schools.exports) or the quote-prefix style
    (ledgers.sheet). ``expect`` are hostile texts that must be in the export (so that the check
    is not vacuous)."""
    cells, sheets_xml = exported_cells(content)
    for xml in sheets_xml:
        assert b"<f>" not in xml and b"<f " not in xml
    shown = []
    for cell in cells:
        assert cell.data_type != "f", cell.coordinate
        if isinstance(cell.value, str):
            shown.append(cell.value)
            if cell.value.startswith(FORMULA_PREFIXES):
                assert cell.quotePrefix, f"{cell.parent.title}!{cell.coordinate} = {cell.value!r}"
    for text in expect:
        assert any(text in value for value in shown), text


@pytest.fixture
def hostile_school(world, phase):
    """The world's school, its teachers, students and visits named with formulas."""
    world.school.name = '=HYPERLINK("http://evil.example","学校")'
    world.school.contact_name = "@SUM(1)"
    world.school.contact_phone = "+86 371 6688 0011"
    world.school.save()
    world.teacher.real_name = "=1+1"
    world.teacher.save()
    world.head_teacher.real_name = "-2+3"
    world.head_teacher.save()
    world.student.name = "+cmd|' /C calc'!A0"
    world.student.address = '=HYPERLINK("http://evil.example","地址")'
    world.student.save()
    world.plain_student.name = "\t=1+1"
    world.plain_student.save()
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=timezone.now() - datetime.timedelta(hours=1),
        phase=phase,
        method=Method.IN_HOME,
        guardians_met="@SUM(1)",
        contents=["learning"],
        situation="=1+1",
        measures="-2+3",
        integrity_declared=True,
        status=Visit.Status.SUBMITTED,
        submitted_at=timezone.now(),
    )
    visit.students.set([world.student, world.plain_student])
    visit.companions.set([world.head_teacher])
    Suggestion.objects.create(visit=visit, text='=HYPERLINK("http://evil.example","建议")', to_school=True)
    statistics_compute(campaign=phase.campaign)
    return world


def download(response) -> bytes:
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


def test_the_visit_export_neutralises_every_formula_like_cell(hostile_school, login):
    content = download(login(hostile_school.school_admin).get(reverse("visit_export")))
    assert_no_live_formula(content, expect=["HYPERLINK", "cmd|", "@SUM(1)", "=1+1", "-2+3"])


def test_the_statistics_sheet_neutralises_every_formula_like_cell(hostile_school, login):
    world = hostile_school
    school = download(login(world.school_admin).get("/statistics/sheet.xlsx"))
    assert_no_live_formula(school, expect=["HYPERLINK", "@SUM(1)", "+86 371"])
    county = download(login(world.bureau_admin).get("/statistics/sheet.xlsx", {"detail": "schools"}))
    assert_no_live_formula(county, expect=["HYPERLINK"])


def test_the_teacher_assessment_neutralises_every_formula_like_cell(hostile_school, login):
    world = hostile_school
    response = login(world.school_admin).get(reverse("teacher_assessment_xlsx", args=[world.school.pk]))
    assert_no_live_formula(download(response), expect=["=1+1", "-2+3"])


def test_the_import_problem_list_neutralises_every_formula_like_cell(world, login):
    client = login(world.school_admin)
    upload_roster(client, formula_roster())
    job = ImportJob.objects.get()
    job.problems = [*job.problems, {"row": 99, "column": "=1+1", "message": "@SUM(1)"}]
    job.save(update_fields=["problems"])
    content = download(client.get(reverse("roster_import_problems", args=[job.public_id])))
    assert_no_live_formula(content, expect=["=1+1", "@SUM(1)", "不是有效的学籍号"])


# --- forged attachments ------------------------------------------------------------------------


def jpeg_bytes(size=(64, 48)) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (30.0, 15.0, 0.0), 3: "E", 4: (120.0, 10.0, 0.0)}  # GPS
    noise = random.Random(size[0]).randbytes(size[0] * size[1] * 3)  # incompressible, and the same every run
    Image.frombytes("RGB", size, noise).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` × ``height`` pixels and carries almost none of them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def pdf_with_object_stream(inner: bytes) -> bytes:
    packed = zlib.compress(inner)
    return (
        b"%PDF-1.5\n3 0 obj\n<</Type/ObjStm/N 2/First 10/Filter/FlateDecode/Length "
        + str(len(packed)).encode()
        + b">>stream\n"
        + packed
        + b"\nendstream\nendobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


PDF_SCRIPT = b"%PDF-1.4\n1 0 obj<</Type/Catalog/OpenAction<</S/JavaScript/JS(app.alert(1))>>>>endobj\n%%EOF\n"
REFUSED = [
    ("php", "photo.jpg", b"<?php system($_GET['c']); ?>", "不是照片或 PDF 文件"),
    ("html", "photo.jpg", b"<html><body><script>alert(document.cookie)</script></body></html>", "不是照片或 PDF"),
    ("svg", "photo.jpg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>', "不是照片"),
    ("jpeg cut in its header", "photo.jpg", jpeg_bytes()[:400], "不完整或已损坏"),
    ("jpeg cut in its picture", "photo.jpg", jpeg_bytes((640, 480))[:-3000], "不完整或已损坏"),
    ("png of 60000 × 60000", "photo.png", png_header_only(60000, 60000), "像素过多"),
    ("png of 9000 × 9000", "photo.png", png_header_only(9000, 9000), "像素过多"),
    ("pdf with javascript", "scan.pdf", PDF_SCRIPT, "含有脚本"),
    (
        "pdf with an escaped name",
        "scan.pdf",
        PDF_SCRIPT.replace(b"/JavaScript", b"/J#61vaScript").replace(b"/JS", b"/J#53"),
        "含有脚本",
    ),
    (
        "pdf with javascript in an object stream",
        "scan.pdf",
        pdf_with_object_stream(b"1 0 2 40 <</Type/Catalog/OpenAction 2 0 R>> <</S/JavaScript/JS(app.alert(1))>>"),
        "含有脚本",
    ),
    ("pdf that launches a program", "scan.pdf", b"%PDF-1.4\n<</S/Launch/F(cmd.exe)>>\n%%EOF\n", "含有脚本"),
    ("encrypted pdf", "scan.pdf", b"%PDF-1.4\ntrailer<</Encrypt 5 0 R/Root 1 0 R>>\n%%EOF\n", "加密"),
]


@pytest.mark.parametrize(("case", "name", "content", "message"), REFUSED, ids=[row[0] for row in REFUSED])
def test_a_forged_attachment_is_refused_with_its_reason_and_the_form_keeps_what_was_typed(
    world, login, phase, settings, case, name, content, message
):
    started = time.monotonic()
    response = login(world.teacher).post(
        reverse("visit_create"), {**visit_form(world), "photos": [SimpleUploadedFile(name, content)]}
    )
    assert time.monotonic() - started < 5
    page = response.content.decode()
    assert response.status_code == 200
    assert f"「{name}」" in page and message in page and "其他内容已保留" in page
    assert "孩子在家按时完成作业" in page  # the rest of the form as typed
    nothing_stored(settings)


def test_a_jpeg_with_a_zip_appended_is_stored_re_encoded_without_the_zip_or_its_location(world, login, phase, settings):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as inner:
        inner.writestr("shell.php", "<?php system($_GET['c']); ?>")
    polyglot = jpeg_bytes() + archive.getvalue()
    assert zipfile.is_zipfile(io.BytesIO(polyglot))

    response = login(world.teacher).post(
        reverse("visit_create"), {**visit_form(world), "photos": [SimpleUploadedFile("photo.jpg", polyglot)]}
    )

    assert response.status_code == 302
    attachment = Attachment.objects.get()
    stored = attachment.path.read_bytes()
    assert attachment.content_type == "image/jpeg"
    assert b"PK\x03\x04" not in stored and b"shell.php" not in stored
    assert not zipfile.is_zipfile(io.BytesIO(stored))
    assert 0x8825 not in Image.open(io.BytesIO(stored)).getexif()  # no GPS left


def test_an_ordinary_scanned_pdf_is_still_accepted(world, login, phase):
    scan = io.BytesIO()
    Image.new("RGB", (200, 280), "white").save(scan, format="PDF")
    response = login(world.teacher).post(
        reverse("visit_create"), {**visit_form(world), "photos": [SimpleUploadedFile("scan.pdf", scan.getvalue())]}
    )
    assert response.status_code == 302
    assert Attachment.objects.get().content_type == "application/pdf"


def test_a_stored_pdf_is_downloaded_sandboxed_and_named_by_its_checked_type(world, login):
    from visits.models import Attachment, Method, Visit

    visit = Visit.objects.create(
        school=world.school, lead_teacher=world.teacher, visited_at=timezone.now(), method=Method.IN_HOME
    )
    visit.students.set([world.student])
    attachment = Attachment.objects.create(
        visit=visit,
        original_name="扫描件\u202egpj.exe",
        content_type="application/pdf",
        size=9,
        uploaded_by=world.teacher,
    )
    attachment.path.parent.mkdir(parents=True, exist_ok=True)
    attachment.path.write_bytes(b"%PDF-1.4\n")

    response = login(world.teacher).get(reverse("attachment_file", args=[attachment.public_id]))

    assert response["Content-Disposition"].startswith("attachment;")
    assert ".pdf" in response["Content-Disposition"] and ".exe" not in response["Content-Disposition"]
    assert response["Content-Security-Policy"].startswith("sandbox")
