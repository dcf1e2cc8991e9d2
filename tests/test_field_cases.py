"""Rosters as they arrive from schools (issue 8): every file in tests/field_cases/ (copied from the
shared field cases, with their README) goes through the real upload page, is read by the real
readers, and gives the outcome its README names; the preview names the sheets and columns.

The field cases are examples of kinds; the tests below them build other files of the same kinds
(openpyxl workbooks with hidden sheets and rows, other escapes and invisible characters, other
date spellings, CSV files in UTF-8 with and without BOM, GBK and UTF-16), so a fix for one file
that misses its kind fails here."""

import codecs
import datetime
import html
import re
from pathlib import Path

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from schools.models import ImportJob, User
from students.models import Category, Guardian, Student
from tests.test_roster_import import id_number

FIELD_CASES = Path(__file__).parent / "field_cases"
EXCEL_DIGITS = "身份证件号被 Excel 当作数字"


# --- going through the upload page as the school admin does ------------------------------------


def upload(client, content: bytes, name: str, kind: str = "roster") -> ImportJob:
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(reverse(f"{kind}_import_upload"), {"file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302, response.content.decode()[:2000]
    return ImportJob.objects.latest("pk")


def page_of(client, job: ImportJob, kind: str = "roster") -> str:
    """The job page as text, tags removed, so assertions read what the clerk reads."""
    content = client.get(reverse(f"{kind}_import_job", args=[job.public_id])).content.decode()
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", content)))


def confirm(client, job: ImportJob, *, skip_invalid: bool = False, kind: str = "roster") -> ImportJob:
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post(
            reverse(f"{kind}_import_confirm", args=[job.public_id]), {"skip_invalid": "1"} if skip_invalid else {}
        )
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, (job.status, job.error, job.problems)
    return job


def field_case(client, name: str) -> tuple[ImportJob, str]:
    job = upload(client, (FIELD_CASES / name).read_bytes(), name)
    return job, page_of(client, job)


def imported_students(*numbers: str) -> dict[str, Student]:
    return {s.student_number: s for s in Student.objects.filter(student_number__in=numbers)}


@pytest.fixture
def admin(world, login):
    return login(world.school_admin)


# --- the field cases, one test each ------------------------------------------------------------


def test_c01_id_numbers_that_went_through_excel_are_refused_with_the_cause_and_none_is_stored(world, admin):
    job, page = field_case(admin, "c01_id_numbers_through_excel.xlsx")

    assert job.status == ImportJob.Status.VALIDATED
    damaged = {p["row"]: p["message"] for p in job.problems if p["column"] == "身份证件号"}
    # A number cell, scientific notation, and 18 characters ending in zeros — one of them with a
    # check character that happens to fit (周静怡).
    assert sorted(damaged) == [3, 4, 5, 6]
    assert all(message.startswith(EXCEL_DIGITS) and "文本" in message for message in damaged.values())
    assert "显示成了科学计数法（4.10522E+17）" in damaged[4]
    assert "「学生名册」：已读取 5 行" in page
    assert "身份证件号" in page and EXCEL_DIGITS in page

    confirm(admin, job, skip_invalid=True)
    stored = imported_students(*(f"G{n}" for n in ("410522201609020232", "410522201503180246")))
    assert list(stored) == ["G410522201609020232"]
    assert not Student.objects.filter(id_number__endswith="000").exists()


def test_c04_a_legacy_xls_registry_export_is_imported_like_the_same_sheet_in_xlsx(world, admin):
    job, page = field_case(admin, "c04_registry_export.xls")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    assert "「学生信息」：已读取 4 行（表头在第 2 行）" in page
    assert "现住址 → 家庭住址" in page and "成员1姓名" in page
    assert job.preview["columns_ignored"] == []

    confirm(admin, job)
    girl = Student.objects.get(student_number="G41052220160921060X")
    assert (girl.name, girl.id_number, girl.birth_date, girl.gender) == (
        "王小红20",
        "41052220160921060X",
        datetime.date(2016, 9, 21),
        "F",
    )
    assert girl.address == "示例县城关镇幸福路20号" and girl.school_class == world.school_class
    assert list(girl.guardians.values_list("name", "relation", "phone")) == [("王建国", "父亲", "13912340020")]
    assert Student.objects.filter(student_number__startswith="G4105222016092").count() == 4


GBK_ROWS = ["G410522201610111000", "G410522201610121030", "G410522201610131044"]


def test_c06_a_gbk_csv_saved_by_excel_on_chinese_windows_is_imported(world, admin):
    job, page = field_case(admin, "c06_roster_gbk.csv")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    assert "「CSV」：已读取 3 行" in page

    confirm(admin, job)
    stored = imported_students(*GBK_ROWS)
    assert [stored[n].name for n in GBK_ROWS] == ["王小红40", "李小明41", "张小红42"]
    assert stored[GBK_ROWS[0]].id_number == "410522201610111000"  # sequence 100, check 0: a real number
    assert stored[GBK_ROWS[0]].birth_date == datetime.date(2016, 10, 11)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "utf-16"])
def test_the_same_csv_in_every_encoding_windows_saves_is_imported(world, admin, encoding):
    text = (FIELD_CASES / "c06_roster_gbk.csv").read_bytes().decode("gbk")
    if encoding == "utf-16":  # Excel's 「Unicode 文本」: UTF-16 with a BOM, tab-separated
        text = text.replace(",", "\t")
    job = upload(admin, codecs.encode(text, encoding), "名册.csv")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    confirm(admin, job)
    assert sorted(s.name for s in imported_students(*GBK_ROWS).values()) == ["张小红42", "李小明41", "王小红40"]


def test_c11_a_header_over_two_rows_gives_the_guardians_and_no_header_student(world, admin):
    job, page = field_case(admin, "c11_two_row_merged_header.xlsx")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    assert "「学生名册」：已读取 4 行（表头在第 3 行）" in page
    assert "监护人信息 / 与学生关系 → 监护人关系" in page

    confirm(admin, job)
    assert not Student.objects.filter(name__in=["监护人姓名", "姓名"]).exists()
    girl = Student.objects.get(student_number="G410522201611201809")
    assert list(girl.guardians.values_list("name", "relation", "phone")) == [("王建国", "父亲", "13912340080")]
    assert Guardian.objects.filter(student__student_number__startswith="G4105222016112").count() == 4


def test_c13_line_breaks_written_as_x000d_are_gone_from_headers_and_data(world, admin):
    job, page = field_case(admin, "c13_crlf_escaped_x000d.xlsx")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    assert {"header": "身份证件号 (必填)", "column": "身份证件号"} in job.preview["columns_used"]
    assert "_x000D_" not in page

    confirm(admin, job)
    stored = list(Student.objects.filter(student_number__startswith="G41052220161").values_list("name", "address"))
    assert ("王小红90", "示例县城关镇幸福路90号") in stored and ("李小明91", "示例县城关镇幸福路91号") in stored
    assert not [s for s in stored if "_x" in "".join(s) or "\r" in "".join(s) or "\n" in "".join(s)]
    assert Student.objects.get(student_number="G410522201611302001").id_number == "410522201611302001"


def test_c19_every_real_date_spelling_is_stored_as_its_date(world, admin):
    job, page = field_case(admin, "c19_birth_dates.xlsx")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []

    confirm(admin, job)
    born = dict(Student.objects.filter(name__regex=r"小明13\d$").values_list("name", "birth_date"))
    assert len(born) == 10
    for name, day in born.items():
        assert day == datetime.date(2016, 9, int(name[-1]) + 1), name


def test_c20_a_hidden_stale_sheet_is_never_read_and_the_preview_says_so(world, admin):
    job, page = field_case(admin, "c20_hidden_old_sheet_first.xlsx")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert "「名册(已核对)」：已读取 4 行" in page
    assert "「原始数据」：未读取，隐藏的工作表" in page

    confirm(admin, job)
    phones = dict(Guardian.objects.filter(student__name__regex=r"小明14\d$").values_list("student__name", "phone"))
    assert phones == {
        "王小明140": "13576540140",
        "李小明141": "13576540141",
        "张小明142": "13576540142",
        "陈小明144": "13912340144",
    }


# --- the same kinds, other files -----------------------------------------------------------------

HEADER = [
    "姓名",
    "性别",
    "学籍号",
    "身份证件号",
    "出生日期",
    "年级",
    "班级",
    "家庭住址",
    "监护人姓名",
    "监护人联系电话",
]


def row(n: int, **changes) -> list:
    born = datetime.date(2016, 3, 1) + datetime.timedelta(days=n)
    number = id_number(born, f"{n % 50 * 2 + 1:03d}")
    values = {
        "姓名": f"王同学{n}",
        "性别": "男",
        "学籍号": f"G{number}",
        "身份证件号": number,
        "出生日期": born.isoformat(),
        "年级": "三年级",
        "班级": "2班",
        "家庭住址": f"示例县城关镇幸福路{n}号",
        "监护人姓名": f"王建国{n}",
        "监护人联系电话": f"139{n:08d}",
    } | changes
    return [values.get(label) for label in HEADER]


def xlsx(path: Path, sheets: dict[str, list[list]], *, hidden: tuple[str, ...] = (), hidden_rows=()) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for values in rows:
            sheet.append(values)
        if title in hidden:
            sheet.sheet_state = "hidden"
        for number in hidden_rows:
            sheet.row_dimensions[number].hidden = True
    workbook.save(path)
    return path.read_bytes()


def test_one_sheet_per_class_is_read_whole_and_hidden_and_other_sheets_are_named_as_skipped(world, admin, tmp_path):
    from tests import factories

    factories.SchoolClassFactory(school=world.school, grade=3, number=1, school_year=world.school_class.school_year)
    content = xlsx(
        tmp_path / "名册.xlsx",
        {
            "旧名单": [HEADER, row(1, 姓名="旧名字")],
            "填写说明": [["请按学籍系统填写"], ["联系人", "王老师"]],
            "三(1)班": [["三年级一班学生名单"], HEADER, row(1, 班级="1班"), row(2, 班级="1班")],
            "三(2)班": [HEADER, row(3), row(4, 出生日期="2016-02-30")],
        },
        hidden=("旧名单",),
    )
    job = upload(admin, content, "名册.xlsx")
    page = page_of(admin, job)

    assert "「旧名单」：未读取，隐藏的工作表" in page
    assert "「填写说明」：未读取，没有找到表头行" in page
    assert "「三(1)班」：已读取 2 行（表头在第 2 行）" in page and "「三(2)班」：已读取 2 行" in page
    assert job.problems == [
        {"row": 3, "sheet": "三(2)班", "column": "出生日期", "message": "「2016-02-30」不是有效日期（没有这一天）"}
    ]
    assert "「三(2)班」第 3 行" in page
    confirm(admin, job, skip_invalid=True)
    assert sorted(Student.objects.filter(name__startswith="王同学").values_list("name", "school_class__number")) == [
        ("王同学1", 1),
        ("王同学2", 1),
        ("王同学3", 2),
    ]


def test_hidden_rows_are_read_and_flagged_in_the_preview(world, admin, tmp_path):
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1), row(2), row(3)]}, hidden_rows=(3,))
    job = upload(admin, content, "名册.xlsx")
    page = page_of(admin, job)

    assert job.preview["hidden_rows"] == 1 and job.preview["hidden_rows_listed"] == ["第 3 行"]
    assert "有 1 行在 Excel 中被隐藏" in page and "隐藏行" in page
    assert [r["row"] for r in job.preview["rows"] if r.get("hidden")] == [3]
    confirm(admin, job)
    assert Student.objects.filter(name="王同学2").exists()


def test_headers_with_escapes_invisible_characters_widths_and_notes_are_all_recognised(world, admin, tmp_path):
    header = [
        "\ufeff姓名",
        "性\u200b别",
        "学籍号_x000A_（必填）",
        "身份证件号\u00a0",
        "出生日期\n(yyyy-mm-dd)",
        "年级",
        "班级【必填】",
        "家庭\u3000住址",
        "监护人姓名_x0009_",
        "监护人联系电话（手机）",
        "备注",
    ]
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [["2025学年学生名册"], [], header, row(1) + ["转入"]]})
    job = upload(admin, content, "名册.xlsx")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    assert [c["column"] for c in job.preview["columns_used"]] == HEADER
    assert job.preview["columns_ignored"] == ["备注"]
    assert job.preview["warnings"] == []


def test_a_missing_column_visits_depend_on_is_warned_about_and_unknown_columns_are_listed(world, admin, tmp_path):
    header = ["姓名", "性别", "学籍号", "年级", "班级", "家长微信"]
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [header, ["王同学", "男", "G20160901001", "三年级", "2班", "wx1"]]})
    job = upload(admin, content, "名册.xlsx")
    page = page_of(admin, job)

    for label in ("身份证件号", "监护人联系电话", "家庭住址"):
        assert f"文件中没有「{label}」列" in page
    assert job.preview["columns_ignored"] == ["家长微信"]


def test_invisible_characters_in_data_cells_are_not_stored(world, admin, tmp_path):
    content = xlsx(
        tmp_path / "名册.xlsx",
        {
            "名册": [
                HEADER,
                row(1, 姓名="\u200b王\u00a0小刚\ufeff", 家庭住址="示例县\u3000城关镇_x000D_\n幸福路\u200d1号 "),
                row(2, 姓名="阿依古丽 • 买买提", 监护人姓名="买买提・艾力"),
                row(3, 姓名="阿依古丽．吐尔逊"),
                row(4, 姓名="𠮷田䶮"),
                row(5, 姓名="王　明", 学籍号=f" Ｇ{row(5)[3]} "),
            ]
        },
    )
    job = upload(admin, content, "名册.xlsx")
    assert job.problems == []
    confirm(admin, job)

    names = set(Student.objects.filter(student_number__startswith="G41052220160").values_list("name", flat=True))
    assert names == {"王小刚", "阿依古丽·买买提", "阿依古丽·吐尔逊", "𠮷田䶮", "王明"}
    assert Student.objects.get(name="王小刚").address == "示例县 城关镇幸福路1号"
    assert Guardian.objects.filter(name="买买提·艾力").exists()


@pytest.mark.parametrize(
    "name",
    ["王?明", "王？明", "王\ufffd明", "王\ue000明", "李\U000f0001"],
    ids=["question mark", "full-width question mark", "replacement character", "private use", "private use plane 15"],
)
def test_a_name_damaged_by_a_wrong_encoding_is_refused(world, admin, tmp_path, name):
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1), row(2, 姓名=name)]})
    job = upload(admin, content, "名册.xlsx")

    assert [(p["row"], p["column"]) for p in job.problems] == [(3, "姓名")]
    assert "请按户口本重新输入" in job.problems[0]["message"]


@pytest.mark.parametrize(
    "cell",
    [
        # A date cell with a time of day, as a program off by a time zone writes it (naive, as in Excel).
        datetime.datetime(2016, 3, 2, 8, 0),  # noqa: DTZ001
        42431,
        "42431",
        "2016.3.2",
        "2016-03-02 00:00:00",
        "2016/3/2 0:00",
        "2016年3月2日",
        "2016年3月2号",
        "20160302",
        20160302,
        " 2016-3-2\u200b ",
        "2016/03/02",
    ],
)
def test_every_spelling_of_a_real_date_is_stored_as_that_date(world, admin, tmp_path, cell):
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1, 出生日期=cell)]})
    job = upload(admin, content, "名册.xlsx")

    assert job.problems == [], cell
    confirm(admin, job)
    assert Student.objects.get(name="王同学1").birth_date == datetime.date(2016, 3, 2)


@pytest.mark.parametrize("typed", ["2016.13.2", "2016年2月30日", "三月二日", "2016-3"])
def test_a_date_that_is_no_date_is_reported_with_the_value_as_typed(world, admin, tmp_path, typed):
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1, 出生日期=typed)]})
    job = upload(admin, content, "名册.xlsx")

    assert [(p["column"], p["message"][: len(typed) + 2]) for p in job.problems] == [("出生日期", f"「{typed}」")]


def excel_cut(number: str) -> str:
    """What Excel keeps of a number typed into a General cell: 15 significant digits, then zeros."""
    return number[:15] + "0" * (len(number) - 15)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda real: float(real), id="a number cell"),
        pytest.param(lambda real: int(real), id="a whole 18-digit number cell from another program"),
        pytest.param(lambda real: f"{float(real):.5E}".replace("E+", "E+"), id="scientific notation"),
        pytest.param(lambda real: f"{float(real):.5e}", id="scientific notation in lower case"),
        pytest.param(lambda real: real[:14] + "0000", id="text ending 0000"),
        pytest.param(lambda real: excel_cut(real), id="text ending 000 with a wrong check character"),
    ],
)
def test_an_id_number_damaged_by_excel_is_refused_with_the_cause(world, admin, tmp_path, damage):
    real = id_number(datetime.date(2016, 3, 2), "237")
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1, 身份证件号=damage(real))]})
    job = upload(admin, content, "名册.xlsx")

    assert [p["column"] for p in job.problems] == ["身份证件号"], job.problems
    assert job.problems[0]["message"].startswith(EXCEL_DIGITS)
    assert "文本" in job.problems[0]["message"]


def test_an_excel_cut_id_whose_check_character_happens_to_fit_is_refused_when_it_ends_0000(world, admin, tmp_path):
    """Like 周静怡 in c01: the sequence code 000 is never issued, so the check character proves nothing."""
    born = next(
        datetime.date(2015, 1, 1) + datetime.timedelta(days=n)
        for n in range(400)
        if id_number(datetime.date(2015, 1, 1) + datetime.timedelta(days=n), "000").endswith("0")
    )
    cut = id_number(born, "000")
    assert cut.endswith("0000")
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1, 身份证件号=cut, 出生日期=born.isoformat())]})
    job = upload(admin, content, "名册.xlsx")

    assert [p["column"] for p in job.problems] == ["身份证件号"]
    assert job.problems[0]["message"].startswith(EXCEL_DIGITS)


def test_a_real_id_number_ending_in_zeros_is_kept(world, admin, tmp_path):
    real = id_number(datetime.date(2016, 3, 2), "100")  # sequence 100: ends x00 plus its check character
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1, 身份证件号=real, 学籍号=f"G{real}", 性别="女")]})
    job = upload(admin, content, "名册.xlsx")

    assert job.problems == []
    confirm(admin, job)
    assert Student.objects.get(name="王同学1").id_number == real


@pytest.mark.parametrize("number", ["A123456(7)", "Ｍ１２３４５６７８", "1234567(8)", "A123456789", "E12345678"])
def test_a_hong_kong_macau_taiwan_or_passport_number_without_its_type_asks_for_the_type(world, admin, tmp_path, number):
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [HEADER, row(1, 身份证件号=number, 出生日期="2016-03-02")]})
    job = upload(admin, content, "名册.xlsx")

    assert [p["column"] for p in job.problems] == ["身份证件号"]
    assert "请在「身份证件类型」列填写证件类型" in job.problems[0]["message"]


def test_the_same_number_with_its_type_is_imported(world, admin, tmp_path):
    header = [*HEADER, "身份证件类型"]
    content = xlsx(tmp_path / "名册.xlsx", {"名册": [header, [*row(1, 身份证件号="E12345678"), "护照"]]})
    job = upload(admin, content, "名册.xlsx")

    assert job.problems == []
    confirm(admin, job)
    assert Student.objects.get(name="王同学1").id_number == "E12345678"


def test_a_web_page_saved_as_xls_is_refused_with_how_to_save_it(world, admin, settings):
    page = '<html xmlns:x="urn:schemas-microsoft-com:office:excel"><body><table><tr><td>姓名</td></tr></table>'
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = admin.post(
            reverse("roster_import_upload"), {"file": SimpleUploadedFile("名册.xls", page.encode("gbk"))}
        )

    assert response.status_code == 200
    assert "请用 Excel 或 WPS 打开它，“另存为”Excel 工作簿（.xlsx）后重新上传" in response.content.decode()
    assert not ImportJob.objects.exists()


# --- the registry's vocabulary -------------------------------------------------------------------

REGISTRY = [
    "姓名",
    "性别",
    "身份证件号",
    "全国学籍号",
    "年级",
    "班级",
    "现住址",
    "是否留守儿童",
    "是否进城务工人员随迁子女",
    "是否孤儿",
    "残疾类型",
    "成员1姓名",
    "成员1关系",
    "成员1是否监护人",
    "成员1联系电话",
    "成员2姓名",
    "成员2关系",
    "成员2是否监护人",
    "成员2联系电话",
]


def registry_row(n: int, left_behind: str, migrant: str, orphan: str, disability: str, guardians: str) -> list:
    born = datetime.date(2016, 5, 1) + datetime.timedelta(days=n)
    number = id_number(born, f"{n * 2 + 1:03d}")
    first, second = ("是" if c == "1" else "否" for c in guardians)
    return [
        f"张同学{n}",
        "男",
        number,
        f"G{number}",
        "三年级",
        "2班",
        f"示例县幸福路{n}号",
        left_behind,
        migrant,
        orphan,
        disability,
        f"张父{n}",
        "父亲",
        first,
        f"1391234{n:04d}",
        f"李母{n}",
        "母亲",
        second,
        f"1381234{n:04d}",
    ]


def test_the_registry_vocabulary_maps_to_categories_and_guardians_are_the_members_marked_as_such(
    world, admin, tmp_path
):
    content = xlsx(
        tmp_path / "学籍导出.xlsx",
        {
            "学生信息": [
                REGISTRY,
                registry_row(1, "非留守儿童", "否", "否", "无残疾", "10"),
                registry_row(2, "2-单亲留守儿童", "是", "否", "0-无残疾", "01"),
                registry_row(3, "双亲留守儿童", "否", "1-是", "视力残疾", "11"),
                registry_row(4, "3-双亲留守儿童", "2-否", "否", "4-肢体残疾", "01"),
            ]
        },
    )
    job = upload(admin, content, "学籍导出.xlsx")
    page = page_of(admin, job)

    assert job.problems == []
    assert "文件中没有「监护人联系电话」列" not in page  # the members carry the phones
    confirm(admin, job)
    students = {s.name: s for s in Student.objects.filter(name__startswith="张同学")}
    today = timezone.localdate()

    def categories(name):
        return set(students[name].categories_on(today))

    assert categories("张同学1") == set()
    assert categories("张同学2") == {Category.LEFT_BEHIND, Category.MIGRANT}
    assert categories("张同学3") == {Category.LEFT_BEHIND, Category.ORPHAN, Category.DISABILITY}
    assert categories("张同学4") == {Category.LEFT_BEHIND, Category.DISABILITY}
    assert students["张同学4"].disability_type == "肢体残疾" and students["张同学1"].disability_type == ""

    def guardians(name):
        return list(students[name].guardians.values_list("name", "relation"))

    assert guardians("张同学1") == [("张父1", "父亲")]
    assert guardians("张同学2") == [("李母2", "母亲")]
    assert guardians("张同学3") == [("张父3", "父亲"), ("李母3", "母亲")]
    assert students["张同学2"].guardians.get().phone == "13812340002"


def test_family_members_under_a_merged_group_heading_are_understood(world, admin, tmp_path):
    top = ["姓名", "性别", "全国学籍号", "年级", "班级", "家庭成员1", None, None, None]
    sub = [None, None, None, None, None, "姓名", "关系", "是否监护人", "联系电话"]
    number = id_number(datetime.date(2016, 5, 2), "011")
    content = xlsx(
        tmp_path / "名册.xlsx",
        {"名册": [top, sub, ["赵同学", "男", f"G{number}", "三年级", "2班", "赵父", "父亲", "是", "13912345678"]]},
    )
    job = upload(admin, content, "名册.xlsx")

    assert job.problems == []
    confirm(admin, job)
    assert list(Student.objects.get(name="赵同学").guardians.values_list("name", "phone")) == [("赵父", "13912345678")]


# --- the staff list gets the same reader -------------------------------------------------------


def test_a_gbk_csv_staff_list_with_invisible_characters_is_imported(world, admin, tmp_path):
    text = "姓名,手机号（必填）,身份\n\u200b陈\u3000晓,１３７１２３４５６７８,任课教师\n"
    job = upload(admin, codecs.encode(text.replace("\u200b", ""), "gbk"), "教职工.csv", kind="staff")

    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    assert "「CSV」：已读取 1 行" in page_of(admin, job, kind="staff")
    confirm(admin, job, kind="staff")
    assert User.objects.get(username="13712345678").real_name == "陈晓"


def test_a_staff_workbook_skips_its_hidden_sheet(world, admin, tmp_path):
    content = xlsx(
        tmp_path / "教职工.xlsx",
        {
            "旧": [["姓名", "手机号"], ["旧老师", "13700000001"]],
            "教职工": [["姓名", "手机号"], ["新老师", "13700000002"]],
        },
        hidden=("旧",),
    )
    job = upload(admin, content, "教职工.xlsx", kind="staff")

    assert "「旧」：未读取，隐藏的工作表" in page_of(admin, job, kind="staff")
    confirm(admin, job, kind="staff")
    assert User.objects.filter(username="13700000002").exists()
    assert not User.objects.filter(username="13700000001").exists()


def test_a_class_sheet_skipped_for_a_missing_required_column_is_warned_about(world, admin, tmp_path):
    without_number = [label for label in HEADER if label != "学籍号"]
    content = xlsx(
        tmp_path / "名册.xlsx",
        {
            "三(2)班": [HEADER, row(1)],
            "三(3)班": [without_number, [v for label, v in zip(HEADER, row(2), strict=True) if label != "学籍号"]],
        },
    )
    job = upload(admin, content, "名册.xlsx")
    page = page_of(admin, job)

    assert "「三(3)班」：未读取，缺少必填列：学籍号" in page
    assert "工作表「三(3)班」没有读取：缺少必填列：学籍号" in job.preview["warnings"][0]


def test_a_guardian_group_heading_with_a_number_is_understood(world, admin, tmp_path):
    top = ["姓名", "性别", "学籍号", "身份证件号", "年级", "班级", "家庭住址", "监护人1", None, None]
    sub = [None] * 7 + ["姓名", "与学生关系", "电话"]
    values = row(1)[:4] + ["三年级", "2班", "幸福路1号", "王父", "父亲", "13912345678"]
    job = upload(admin, xlsx(tmp_path / "名册.xlsx", {"名册": [top, sub, values]}), "名册.xlsx")

    assert job.problems == [] and job.preview["columns_ignored"] == []
    confirm(admin, job)
    assert list(Student.objects.get(name="王同学1").guardians.values_list("name", "relation", "phone")) == [
        ("王父", "父亲", "13912345678")
    ]
