"""The roster import end to end (DESIGN §9): real XLSX files go through the import job as a school
clerk runs it — upload, check, confirm, apply — and the tests look at what the clerk would see:
the problems by row and column, the preview, and the students, guardians and categories stored."""

import datetime
import re
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from openpyxl.utils.datetime import to_excel

from schools import importing
from schools.importing import SheetError
from schools.models import AuditEvent, ImportJob
from schools.services import import_job_apply, import_job_confirm, import_job_create, import_job_validate
from students.models import Category, Guardian, Student, StudentCategory
from students.roster_import import RosterImporter
from tests import factories

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
    "监护人关系",
    "监护人联系电话",
    "是否留守儿童",
    "残疾类型",
]
SURNAMES = "王李张刘陈杨赵黄周吴"
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(born: datetime.date, sequence: str) -> str:
    """A resident ID number with a correct check character; an odd last sequence digit is a boy's."""
    body = f"410522{born:%Y%m%d}{sequence}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def born_on(n: int) -> datetime.date:
    return datetime.date(2016, 9, 1) + datetime.timedelta(days=n % 700)


def student(n: int) -> dict:
    """A valid row keyed by header label: boy number ``n`` of 三年级(2)班, with his father's phone."""
    born = born_on(n)
    number = id_number(born, f"{n // 700 * 2 + 1:03d}")
    return {
        "姓名": f"{SURNAMES[n % 10]}同学{n}",
        "性别": "男",
        "学籍号": f"G{number}",
        "身份证件号": number,
        "出生日期": born.isoformat(),
        "年级": "三年级",
        "班级": "2班",
        "家庭住址": f"示例县城关镇幸福路 {n} 号",
        "监护人姓名": f"{SURNAMES[n % 10]}建国{n}",
        "监护人关系": "父亲",
        "监护人联系电话": f"139{n:08d}",
        "是否留守儿童": "否",
        "残疾类型": "无",
    }


def build_workbook(header: list[str], rows: list, *, title: str = "学生名册") -> openpyxl.Workbook:
    """One sheet: the header, then the rows (lists, or dicts keyed by header label)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(header)
    for row in rows:
        sheet.append([row.get(label) for label in header] if isinstance(row, dict) else row)
    return workbook


def build_xlsx(path: Path, header: list[str], rows: list, *, title: str = "学生名册") -> Path:
    build_workbook(header, rows, title=title).save(path)
    return path


def full_width(text: str) -> str:
    """What an input method in full-width mode types: Ｇ４１０…"""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def rewrite_sheet_xml(path: Path, change) -> Path:
    with zipfile.ZipFile(path) as archive:
        contents = [(info, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in contents:
            archive.writestr(info, change(data) if info.filename == "xl/worksheets/sheet1.xml" else data)
    return path


# --- running the job as the school admin does --------------------------------------------------


def upload(world, content: bytes, name: str = "名册.xlsx") -> ImportJob:
    return import_job_create(
        kind=ImportJob.Kind.ROSTER,
        school=world.school,
        uploaded_by=world.school_admin,
        upload=SimpleUploadedFile(name, content),
    )


def validated(world, path: Path) -> ImportJob:
    job = upload(world, path.read_bytes(), path.name)
    import_job_validate(job_id=job.pk, importer=RosterImporter())
    return ImportJob.objects.get(pk=job.pk)


def imported(world, job: ImportJob, *, skip_invalid: bool = False) -> ImportJob:
    assert import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=skip_invalid)
    import_job_apply(job_id=job.pk, importer=RosterImporter())
    return ImportJob.objects.get(pk=job.pk)


def roster(world, tmp_path: Path, rows: list, header: list[str] = HEADER, name: str = "名册.xlsx") -> ImportJob:
    """Upload and check a roster of these rows."""
    return validated(world, build_xlsx(tmp_path / name, header, rows))


def database_state() -> tuple:
    """Everything an import may write, to compare before and after."""
    return (
        list(
            Student.objects.order_by("pk").values_list(
                "pk", "student_number", "name", "school_id", "school_class_id", "status", "address", "updated_at"
            )
        ),
        list(Guardian.objects.order_by("pk").values_list("pk", "student_id", "name", "relation", "phone")),
        list(StudentCategory.objects.order_by("pk").values_list("pk", "student_id", "category", "start", "end")),
    )


def assert_nothing_written_without_skipping(world, job: ImportJob, before: tuple) -> None:
    """The clerk did not choose to import only the valid rows: confirming is refused, a stray apply
    does nothing, and the database is as it was."""
    assert not import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=False)
    import_job_apply(job_id=job.pk, importer=RosterImporter())
    assert ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.VALIDATED
    assert database_state() == before


def stored_imports(settings) -> list[Path]:
    folder = settings.PRIVATE_FILES_ROOT / "imports"
    return list(folder.iterdir()) if folder.exists() else []


def in_force_today(student: Student) -> list[str]:
    return sorted(
        StudentCategory.objects.filter(student=student)
        .in_force_on(timezone.localdate())
        .values_list("category", flat=True)
    )


# --- a clean file ------------------------------------------------------------------------------


def test_a_clean_file_creates_students_guardians_and_categories_in_the_right_classes(world, tmp_path):
    boy = student(1) | {"是否留守儿童": "是"}
    girl = student(2) | {
        "姓名": "李小红",
        "性别": "女",
        "年级": "四年级",
        "班级": "(1)班",
        "监护人姓名": "李秀英",
        "监护人关系": "祖母",
        "残疾类型": "肢体残疾",
    }
    girl["身份证件号"] = id_number(born_on(2), "024")
    girl["学籍号"] = f"G{girl['身份证件号']}"

    job = roster(world, tmp_path, [boy, girl])

    assert job.status == ImportJob.Status.VALIDATED
    assert job.problems == []
    assert (job.total_rows, job.valid_rows, job.invalid_rows) == (2, 2, 0)
    assert job.preview["created"] == 2
    assert [(row["row"], row["name"], row["class"], row["action"]) for row in job.preview["rows"]] == [
        (2, boy["姓名"], "三年级（2）班", "新增"),
        (3, "李小红", "四年级（1）班", "新增"),
    ]

    job = imported(world, job)

    assert job.status == ImportJob.Status.DONE
    assert job.result == {"created": 2, "updated": 0, "unchanged": 0, "skip_invalid": False, "skipped_rows": 0}
    assert not job.file_path.exists()
    new_boy = Student.objects.get(student_number=boy["学籍号"])
    assert (new_boy.school, new_boy.school_class, new_boy.status) == (
        world.school,
        world.school_class,
        Student.Status.ACTIVE,
    )
    assert (new_boy.name, new_boy.gender, new_boy.id_number, new_boy.birth_date) == (
        boy["姓名"],
        "M",
        boy["身份证件号"],
        born_on(1),
    )
    assert new_boy.address == "示例县城关镇幸福路 1 号"
    assert new_boy.disability_type == ""
    assert list(new_boy.guardians.values_list("name", "relation", "phone")) == [("李建国1", "父亲", "13900000001")]
    left_behind = new_boy.categories.get()
    assert (left_behind.category, left_behind.source) == (Category.LEFT_BEHIND, StudentCategory.Source.ROSTER)
    assert left_behind.in_force_on(timezone.localdate())

    new_girl = Student.objects.get(student_number=girl["学籍号"])
    assert (new_girl.school_class, new_girl.gender, new_girl.disability_type) == (world.plain_class, "F", "肢体残疾")
    assert list(new_girl.guardians.values_list("name", "relation")) == [("李秀英", "祖母")]
    assert in_force_today(new_girl) == [Category.DISABILITY]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT, detail__stage="applied").count() == 1


def test_a_file_without_gender_or_birth_date_columns_takes_them_from_the_id_number(world, tmp_path):
    header = ["姓名", "学籍号", "身份证件号", "年级", "班级"]
    girl = student(5) | {"身份证件号": id_number(born_on(5), "024")}

    imported(world, roster(world, tmp_path, [girl], header=header))

    new_girl = Student.objects.get(student_number=girl["学籍号"])
    assert (new_girl.gender, new_girl.birth_date) == ("F", born_on(5))


# --- rows with mistakes ------------------------------------------------------------------------


def wrong_check_character(row: dict) -> dict:
    number = row["身份证件号"]
    return row | {"身份证件号": number[:17] + ("1" if number[17] != "1" else "2")}


FAULTY_ROWS = [
    pytest.param({"姓名": ""}, "姓名", "姓名不能为空", id="a missing name"),
    pytest.param({"姓名": "  \u3000 "}, "姓名", "姓名不能为空", id="a name of spaces only"),
    pytest.param({"学籍号": None}, "学籍号", "学籍号不能为空", id="a missing student number"),
    pytest.param({"班级": None}, "班级", "班级不能为空", id="a missing class"),
    pytest.param(
        {"学籍号": "G-2016/01"},
        "学籍号",
        "「G-2016/01」不是有效的学籍号（6—32 位字母或数字）",
        id="a student number with dashes",
    ),
    pytest.param(
        wrong_check_character, "身份证件号", "身份证件号校验位不正确，请核对是否抄错", id="a wrong check character"
    ),
    pytest.param(
        {"身份证件号": "41052220160901013"}, "身份证件号", "身份证件号应为 18 位", id="an ID number too short"
    ),
    pytest.param(
        {"出生日期": "2016-05-05"}, "出生日期", "出生日期与身份证件号不一致", id="a birth date not matching the ID"
    ),
    pytest.param({"性别": "女"}, "性别", "性别与身份证件号不一致", id="a gender not matching the ID"),
    pytest.param({"出生日期": "2016-02-30"}, "出生日期", "「2016-02-30」不是有效日期", id="an impossible date"),
    pytest.param(
        {"出生日期": "九月一日"},
        "出生日期",
        "「九月一日」不是可识别的日期，请写成 2015-03-08 或 2015/3/8",
        id="a date in words",
    ),
    pytest.param(
        {"出生日期": "2099-09-01"}, "出生日期", "出生日期 2099-09-01 不在合理范围内", id="a future birth date"
    ),
    pytest.param({"性别": "未知"}, "性别", "「未知」不是有效性别，请填写“男”或“女”", id="a bad gender"),
    pytest.param(
        {"监护人联系电话": "139 1234"}, "监护人联系电话", "「139 1234」不是有效的手机号或固定电话", id="a bad phone"
    ),
    pytest.param({"是否留守儿童": "也许"}, "是否留守儿童", "「也许」应填写“是”或“否”", id="left-behind maybe"),
    pytest.param(
        {"年级": "五年级", "班级": "3班"},
        "班级",
        "本校当前学年没有「五年级3班」这个班级，请先在「班级管理」中添加",
        id="an unknown class",
    ),
    pytest.param(
        {"年级": "三年级", "班级": "火箭班"},
        "班级",
        "「火箭班」不是可识别的班级，请写成“2班”或“(2)班”",
        id="a class that is not a number",
    ),
    pytest.param(
        lambda row: row | {"身份证件号": float(row["身份证件号"])},
        "身份证件号",
        "身份证件号被 Excel 当作数字，后几位已变成 0。请把这一列的单元格格式设为“文本”",
        id="an ID number Excel stored as a number",
    ),
    pytest.param(
        {"学籍号": 4.10522201609020e18},
        "学籍号",
        "单元格是数字格式，Excel 只保留 15 位数字，后几位已变成 0。请把该列设为“文本”后重新填写",
        id="a student number Excel stored as a number",
    ),
]


@pytest.mark.parametrize(("mistake", "column", "reason"), FAULTY_ROWS)
def test_a_faulty_row_is_reported_by_row_column_and_reason_and_nothing_is_written(
    world, tmp_path, mistake, column, reason
):
    faulty = mistake(student(2)) if callable(mistake) else student(2) | mistake
    before = database_state()

    job = roster(world, tmp_path, [student(1), faulty, student(3)])

    assert job.status == ImportJob.Status.VALIDATED
    assert len(job.problems) == 1, job.problems
    assert job.problems[0]["row"] == 3
    assert job.problems[0]["column"] == column
    assert job.problems[0]["message"].startswith(reason)
    assert (job.valid_rows, job.invalid_rows) == (2, 1)
    assert_nothing_written_without_skipping(world, job, before)


def test_dates_typed_in_every_clerk_format_are_all_accepted(world, tmp_path):
    def typed(born: datetime.date) -> list:
        return [
            born.isoformat(),
            f"{born.year}/{born.month}/{born.day}",
            f"{born.year}.{born.month}.{born.day}",
            f"{born:%Y%m%d}",
            int(f"{born:%Y%m%d}"),
            f"{born.year}年{born.month}月{born.day}日",
            born,  # a real date cell
            int(to_excel(born)),  # a date cell whose format was lost: the serial number
        ]

    rows = [student(n) | {"出生日期": typed(born_on(n))[n]} for n in range(8)]

    job = roster(world, tmp_path, rows)
    assert job.problems == []
    imported(world, job)

    stored = dict(Student.objects.filter(school=world.school).values_list("student_number", "birth_date"))
    assert {row["学籍号"]: stored[row["学籍号"]] for row in rows} == {
        row["学籍号"]: born_on(n) for n, row in enumerate(rows)
    }


def test_full_width_digits_and_stray_spaces_in_student_number_and_phone_are_normalised(world, tmp_path):
    row = student(1)
    number = row["学籍号"]
    typed = row | {
        "学籍号": f" {full_width(number[:8])}\u3000{full_width(number[8:])} ",
        "身份证件号": full_width(row["身份证件号"]),
        "监护人联系电话": "１３９\u3000０００ ０００ ０１",
        "班级": "（２）班",
    }

    job = roster(world, tmp_path, [typed])
    assert job.problems == []
    imported(world, job)

    new = Student.objects.get(student_number=number)
    assert new.id_number == row["身份证件号"]
    assert new.school_class == world.school_class
    assert new.guardians.get().phone == "13900000001"
    # The same student typed plainly next time is recognised, not added again.
    assert roster(world, tmp_path, [row], name="再次.xlsx").preview["unchanged"] == 1


def test_a_student_number_repeated_in_the_file_is_flagged_on_the_second_row_naming_the_first(world, tmp_path):
    again = student(3) | {"学籍号": student(1)["学籍号"]}
    same_id = student(4) | {"身份证件号": student(2)["身份证件号"], "出生日期": student(2)["出生日期"]}
    before = database_state()

    job = roster(world, tmp_path, [student(1), student(2), again, same_id])

    assert job.problems == [
        {"row": 4, "column": "学籍号", "message": "与第 2 行的学籍号重复"},
        {"row": 5, "column": "身份证件号", "message": "与第 3 行的身份证件号重复"},
    ]
    assert_nothing_written_without_skipping(world, job, before)


def test_a_student_number_active_at_another_school_is_refused(world, tmp_path):
    row = student(1) | {"学籍号": world.other_student.student_number}
    before = database_state()

    job = roster(world, tmp_path, [row])

    assert job.problems == [
        {
            "row": 2,
            "column": "学籍号",
            "message": "该学籍号已登记在本县另一所学校的在读学生名下，请先由原学校办理转出",
        }
    ]
    assert_nothing_written_without_skipping(world, job, before)
    world.other_student.refresh_from_db()
    assert (world.other_student.school, world.other_student.status) == (world.other_school, Student.Status.ACTIVE)


def test_an_id_number_already_held_by_another_student_is_refused(world, tmp_path):
    row = student(1)
    factories.StudentFactory(school_class=world.school_class, id_number=row["身份证件号"])
    before = database_state()

    job = roster(world, tmp_path, [row])

    assert job.problems == [{"row": 2, "column": "身份证件号", "message": "该身份证件号已登记在另一个学籍号的学生名下"}]
    assert_nothing_written_without_skipping(world, job, before)


def test_a_student_who_left_another_school_is_accepted_as_a_transfer(world, tmp_path):
    row = student(1)
    leaver = factories.StudentFactory(
        school_class=world.other_class, student_number=row["学籍号"], name=row["姓名"], status=Student.Status.LEFT
    )

    job = roster(world, tmp_path, [row])

    assert job.problems == []
    assert (job.preview["created"], job.preview["updated"]) == (0, 1)
    changes = job.preview["rows"][0]["changes"]
    assert "学校（转入）" in changes
    assert "在读状态" in changes
    job = imported(world, job)

    assert job.result["updated"] == 1
    leaver.refresh_from_db()
    assert (leaver.school, leaver.school_class, leaver.status) == (
        world.school,
        world.school_class,
        Student.Status.ACTIVE,
    )
    assert Student.objects.filter(student_number=row["学籍号"]).count() == 1
    assert list(leaver.guardians.values_list("name", "phone")) == [(row["监护人姓名"], row["监护人联系电话"])]


# --- files that cannot be used at all ----------------------------------------------------------


def binary_junk(tmp_path: Path) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def web_page_named_xls(tmp_path: Path) -> bytes:
    return '<html><head><meta charset="utf-8"></head><body><table><tr><td>姓名</td></tr></table></body></html>'.encode()


def old_xls(tmp_path: Path) -> bytes:
    return bytes.fromhex("d0cf11e0a1b11ae1") + bytes(8192)


def truncated_zip(tmp_path: Path) -> bytes:
    return build_xlsx(tmp_path / "完整.xlsx", HEADER, [student(1)]).read_bytes()[:700]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(binary_junk, "文件不是 Excel 工作簿（.xlsx 或 .xls）或 CSV 文件，无法读取。", id="binary junk"),
        pytest.param(old_xls, "文件已损坏，无法作为 Excel 工作簿打开。", id="a damaged old .xls"),
        pytest.param(web_page_named_xls, "这个文件其实是网页（HTML）", id="a web page named .xls"),
        pytest.param(truncated_zip, "文件已损坏，无法作为 Excel 工作簿打开。", id="a truncated zip"),
    ],
)
def test_a_file_that_is_not_an_xlsx_workbook_is_refused_at_upload_and_nothing_is_stored(
    world, tmp_path, settings, content, reason
):
    before = database_state()

    with pytest.raises(SheetError) as refused:
        upload(world, content(tmp_path))

    assert str(refused.value).startswith(reason)
    assert not ImportJob.objects.exists()
    assert stored_imports(settings) == []
    assert database_state() == before


def test_an_upload_over_the_size_limit_is_refused_before_anything_is_stored(world, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
    before = database_state()

    with pytest.raises(SheetError, match="文件大小为 20.0 MB，超过 10 MB 的上限"):
        upload(world, bytes(20 * 1024 * 1024))

    assert not ImportJob.objects.exists()
    assert stored_imports(settings) == []
    assert database_state() == before


def test_a_zip_bomb_is_refused_at_upload_without_being_expanded(world, tmp_path, settings, monkeypatch):
    monkeypatch.setattr(importing, "MAX_UNCOMPRESSED_BYTES", 1024 * 1024)
    path = build_xlsx(tmp_path / "名册.xlsx", HEADER, [student(1)])
    padding = b"<!--" + b" " * (4 * 1024 * 1024) + b"-->"
    rewrite_sheet_xml(path, lambda xml: xml.replace(b"<sheetData>", padding + b"<sheetData>"))
    assert path.stat().st_size < 64 * 1024
    before = database_state()

    with pytest.raises(SheetError, match="文件解压后过大，不像是一份名册"):
        upload(world, path.read_bytes())

    assert not ImportJob.objects.exists()
    assert stored_imports(settings) == []
    assert database_state() == before


def broken_sheet_xml(tmp_path: Path) -> Path:
    path = build_xlsx(tmp_path / "名册.xlsx", HEADER, [student(1), student(2)])
    return rewrite_sheet_xml(path, lambda xml: xml[: len(xml) // 2])


def staff_list(tmp_path: Path) -> Path:
    return build_xlsx(
        tmp_path / "名册.xlsx", ["教师", "手机号", "任教学科"], [["王老师", "13912345678", "语文"]], title="教职工"
    )


def without_student_numbers(tmp_path: Path) -> Path:
    return build_xlsx(tmp_path / "名册.xlsx", ["姓名", "性别", "班级"], [["张小明", "男", "2班"]])


def header_only(tmp_path: Path) -> Path:
    return build_xlsx(tmp_path / "名册.xlsx", HEADER, [])


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(
            broken_sheet_xml, "文件已损坏，无法作为 Excel 工作簿打开。请重新导出后上传。", id="a corrupt sheet"
        ),
        pytest.param(
            staff_list,
            "没有找到表头行：文件中没有哪个工作表的前 10 行包含「姓名」、「学籍号」、「班级」等列。请使用下载的模板。",
            id="the wrong workbook",
        ),
        pytest.param(
            without_student_numbers,
            "工作表「学生名册」缺少必填列：学籍号。请使用下载的模板，或把表头改为模板中的名称。",
            id="a sheet without student numbers",
        ),
        pytest.param(header_only, "工作表「学生名册」在表头下面没有数据行。", id="an empty sheet"),
    ],
)
def test_a_workbook_that_cannot_be_read_as_a_roster_fails_with_a_clear_reason_and_changes_nothing(
    world, tmp_path, build, reason
):
    before = database_state()

    job = validated(world, build(tmp_path))

    assert job.status == ImportJob.Status.FAILED
    assert job.error == reason
    assert job.finished_at is not None
    assert not job.file_path.exists()
    assert not import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=True)
    assert database_state() == before


# --- choosing to import the valid rows ----------------------------------------------------------


def test_skipping_invalid_rows_imports_only_the_valid_ones_and_reports_how_many_were_skipped(world, tmp_path):
    rows = [
        student(1),
        student(2) | {"性别": "未知"},
        student(3),
        student(4) | {"年级": "六年级"},
        student(5),
    ]
    job = roster(world, tmp_path, rows)
    assert (job.valid_rows, job.invalid_rows) == (3, 2)
    assert [problem["row"] for problem in job.problems] == [3, 5]

    job = imported(world, job, skip_invalid=True)

    assert job.status == ImportJob.Status.DONE
    assert job.result == {"created": 3, "updated": 0, "unchanged": 0, "skip_invalid": True, "skipped_rows": 2}
    numbers = set(Student.objects.filter(school=world.school).values_list("student_number", flat=True))
    assert {row["学籍号"] for row in rows} & numbers == {rows[0]["学籍号"], rows[2]["学籍号"], rows[4]["学籍号"]}


def test_confirming_a_file_with_errors_without_skipping_is_refused(world, tmp_path):
    job = roster(world, tmp_path, [student(1), student(2) | {"是否留守儿童": "也许"}])

    assert not import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=False)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.VALIDATED
    assert not Student.objects.filter(student_number=student(1)["学籍号"]).exists()


# --- importing again ----------------------------------------------------------------------------


def test_reimporting_the_same_file_changes_nothing(world, tmp_path):
    rows = [student(1) | {"是否留守儿童": "是"}, student(2) | {"残疾类型": "视力残疾"}, student(3)]
    path = build_xlsx(tmp_path / "名册.xlsx", HEADER, rows)
    imported(world, validated(world, path))
    before = database_state()

    job = validated(world, path)

    assert job.problems == []
    assert {key: job.preview[key] for key in ("created", "updated", "unchanged", "rows")} == {
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "rows": [],
    }
    job = imported(world, job)
    assert job.result == {"created": 0, "updated": 0, "unchanged": 3, "skip_invalid": False, "skipped_rows": 0}
    assert database_state() == before


def test_blank_id_number_birth_date_or_address_cells_keep_what_is_stored(world, tmp_path):
    """A later file with those cells empty (a column filled for new pupils only, a formula with no
    saved result) changes nothing: the preview shows no change and the stored values stay."""
    rows = [student(1), student(2)]
    imported(world, roster(world, tmp_path, rows, name="九月.xlsx"))
    stored = Student.objects.get(student_number=rows[0]["学籍号"])

    blanked = rows[0] | {"身份证件号": None, "出生日期": None, "家庭住址": None, "性别": "男"}
    job = roster(world, tmp_path, [blanked, rows[1]], name="十月.xlsx")

    assert job.problems == []
    assert (job.preview["updated"], job.preview["unchanged"]) == (0, 2)
    imported(world, job)
    again = Student.objects.get(pk=stored.pk)
    assert (again.id_number, again.birth_date, again.address) == (stored.id_number, stored.birth_date, stored.address)


def test_a_corrected_file_updates_the_students_matched_by_student_number(world, tmp_path):
    rows = [student(1), student(2)]
    imported(world, roster(world, tmp_path, rows, name="九月.xlsx"))
    moved = Student.objects.get(student_number=rows[0]["学籍号"])
    untouched = Student.objects.get(student_number=rows[1]["学籍号"])
    untouched_at = untouched.updated_at

    corrected = rows[0] | {
        "年级": "四年级",
        "班级": "1班",
        "家庭住址": "示例县李庄镇李庄村 3 组",
        "监护人联系电话": "13800001111",
    }
    job = roster(world, tmp_path, [corrected, rows[1]], name="更正.xlsx")

    assert job.preview["created"] == 0
    assert (job.preview["updated"], job.preview["unchanged"]) == (1, 1)
    assert job.preview["rows"] == [
        {
            "row": 2,
            "name": rows[0]["姓名"],
            "class": "四年级（1）班",
            "action": "更新",
            "changes": "班级、家庭住址、监护人",
        }
    ]
    job = imported(world, job)

    assert job.result["updated"] == 1
    same = Student.objects.get(student_number=rows[0]["学籍号"])
    assert same.pk == moved.pk
    assert (same.school_class, same.address) == (world.plain_class, "示例县李庄镇李庄村 3 组")
    assert list(same.guardians.values_list("name", "phone")) == [(rows[0]["监护人姓名"], "13800001111")]
    untouched.refresh_from_db()
    assert untouched.updated_at == untouched_at


def test_left_behind_changing_to_no_ends_the_roster_category_but_never_one_recorded_by_hand(world, tmp_path):
    rows = [student(1) | {"是否留守儿童": "是"}, student(2) | {"是否留守儿童": "是"}]
    imported(world, roster(world, tmp_path, rows, name="九月.xlsx"))
    from_roster = Student.objects.get(student_number=rows[0]["学籍号"])
    by_hand = Student.objects.get(student_number=rows[1]["学籍号"])
    a_month_ago = timezone.localdate() - datetime.timedelta(days=30)
    StudentCategory.objects.filter(student=from_roster).update(start=a_month_ago)
    StudentCategory.objects.filter(student=by_hand).update(start=a_month_ago, source=StudentCategory.Source.MANUAL)

    job = roster(world, tmp_path, [row | {"是否留守儿童": "否"} for row in rows], name="十月.xlsx")

    assert (job.preview["updated"], job.preview["unchanged"]) == (1, 1)
    assert job.preview["rows"][0]["changes"] == "留守儿童（含单亲子女）"
    imported(world, job)

    ended = from_roster.categories.get()
    assert ended.end == timezone.localdate() - datetime.timedelta(days=1)
    assert in_force_today(from_roster) == []
    kept = by_hand.categories.get()
    assert (kept.source, kept.end) == (StudentCategory.Source.MANUAL, None)
    assert in_force_today(by_hand) == [Category.LEFT_BEHIND]


def test_a_category_recorded_by_hand_is_not_recorded_again_when_the_roster_says_yes(world, tmp_path):
    row = student(1) | {"是否留守儿童": "是"}
    existing = factories.StudentFactory(school_class=world.school_class, student_number=row["学籍号"])
    factories.StudentCategoryFactory(student=existing, category=Category.LEFT_BEHIND)

    imported(world, roster(world, tmp_path, [row]))

    assert list(existing.categories.values_list("source", flat=True)) == [StudentCategory.Source.MANUAL]
    assert in_force_today(existing) == [Category.LEFT_BEHIND]


def test_a_category_the_roster_created_today_is_withdrawn_when_a_corrected_file_says_no(world, tmp_path):
    row = student(1) | {"是否留守儿童": "是"}
    imported(world, roster(world, tmp_path, [row], name="上午.xlsx"))

    imported(world, roster(world, tmp_path, [row | {"是否留守儿童": "否"}], name="下午.xlsx"))

    assert not StudentCategory.objects.filter(student__student_number=row["学籍号"]).exists()


def test_a_file_without_the_left_behind_column_leaves_categories_as_they_are(world, tmp_path):
    row = student(1) | {"是否留守儿童": "是"}
    imported(world, roster(world, tmp_path, [row], name="九月.xlsx"))
    header = [label for label in HEADER if label != "是否留守儿童"]

    job = roster(world, tmp_path, [row], header=header, name="十月.xlsx")

    assert job.preview["unchanged"] == 1
    imported(world, job)
    assert in_force_today(Student.objects.get(student_number=row["学籍号"])) == [Category.LEFT_BEHIND]


# --- formulas -----------------------------------------------------------------------------------

HYPERLINK = '=HYPERLINK("http://x","y")'


def test_a_name_typed_as_text_that_looks_like_a_formula_is_stored_as_that_text(world, tmp_path):
    workbook = build_workbook(HEADER, [student(1), student(2)])
    cell = workbook.active["A3"]
    cell.value = HYPERLINK
    cell.data_type = "s"  # as Excel saves a cell typed with a leading apostrophe
    workbook.save(tmp_path / "名册.xlsx")

    job = validated(world, tmp_path / "名册.xlsx")
    assert job.problems == []
    imported(world, job)

    assert Student.objects.get(student_number=student(2)["学籍号"]).name == HYPERLINK


def test_a_formula_saved_by_excel_imports_the_value_the_clerk_sees_not_the_formula(world, tmp_path):
    workbook = build_workbook(HEADER, [student(1), student(2) | {"姓名": HYPERLINK}])
    workbook.save(tmp_path / "名册.xlsx")
    # Excel stores the result it shows next to the formula; openpyxl does not, so add it.
    rewrite_sheet_xml(
        tmp_path / "名册.xlsx",
        lambda xml: re.sub(rb'<c r="A3"><f>(.*?)</f>(?:<v\s*/>|<v></v>)', rb'<c r="A3" t="str"><f>\1</f><v>y</v>', xml),
    )

    job = validated(world, tmp_path / "名册.xlsx")
    assert job.problems == []
    imported(world, job)

    assert Student.objects.get(student_number=student(2)["学籍号"]).name == "y"


def test_a_formula_without_a_saved_result_is_flagged_as_empty_never_evaluated(world, tmp_path):
    before = database_state()

    job = roster(world, tmp_path, [student(1), student(2) | {"姓名": HYPERLINK}])

    assert job.status == ImportJob.Status.VALIDATED
    assert job.problems == [{"row": 3, "column": "姓名", "message": "姓名不能为空"}]
    assert_nothing_written_without_skipping(world, job, before)


# --- a whole county school ----------------------------------------------------------------------


def test_five_thousand_rows_validate_and_import_without_a_query_per_row(world, tmp_path, django_assert_max_num_queries):
    rows = []
    for n in range(5000):
        row = student(n)
        if n % 2:
            row |= {"年级": "四年级", "班级": "1班"}
        if n % 10 == 0:
            row |= {"是否留守儿童": "是"}
        rows.append(row)
    job = upload(world, build_xlsx(tmp_path / "全校名册.xlsx", HEADER, rows).read_bytes())

    started = time.perf_counter()
    with django_assert_max_num_queries(50) as queries:
        import_job_validate(job_id=job.pk, importer=RosterImporter())
    validate_seconds = time.perf_counter() - started
    job = ImportJob.objects.get(pk=job.pk)
    assert (job.status, job.valid_rows, job.invalid_rows) == (ImportJob.Status.VALIDATED, 5000, 0)
    assert job.preview["created"] == 5000
    assert len(job.preview["rows"]) == 200

    started = time.perf_counter()
    job = imported(world, job)
    apply_seconds = time.perf_counter() - started
    print(
        f"\n5,000-row roster on {connection.vendor}: validate {validate_seconds:.2f} s"
        f" ({len(queries.captured_queries)} queries), apply {apply_seconds:.2f} s"
    )

    assert job.result["created"] == 5000
    assert Student.objects.filter(school=world.school, school_class=world.school_class).count() == 2500 + 1
    assert Student.objects.filter(school=world.school, school_class=world.plain_class).count() == 2500 + 1
    assert Guardian.objects.filter(student__school=world.school).count() == 5000
    assert (
        StudentCategory.objects.filter(category=Category.LEFT_BEHIND, source=StudentCategory.Source.ROSTER).count()
        == 500
    )


def test_a_cell_showing_an_excel_error_is_flagged_not_imported_as_a_name(world, tmp_path):
    broken = {**student(1), "姓名": "#N/A"}
    job = roster(world, tmp_path, [[student(0)[h] for h in HEADER], [broken[h] for h in HEADER]])
    assert job.invalid_rows == 1
    assert {
        "row": 3,
        "column": "姓名",
        "message": "单元格是 Excel 错误值「#N/A」，请修正公式或填入实际内容",
    } in job.problems


# --- the row check stands in for the model's validation ------------------------------------------


def test_the_row_check_refuses_every_value_the_student_model_would_refuse(world, tmp_path):
    """Applying creates students without ``full_clean`` (50,000 calls were a fifth of the import's
    time): the row check must refuse whatever the model's validation would — over-long fields, a
    gender outside the choices, a blank name — and what it accepts must pass the model's validation."""
    header = [*HEADER[:3], "身份证件类型", *HEADER[3:]]
    fine = [student(n) | {"身份证件类型": "居民身份证"} for n in range(1, 4)]
    fine[0] |= {"姓名": "王" * 50, "家庭住址": "路" * 200, "残疾类型": "残" * 30}
    fine[1] |= {"身份证件类型": "护照", "身份证件号": "E" + "1" * 17}
    refused = [
        student(11) | {"姓名": "王" * 51},
        student(12) | {"家庭住址": "路" * 201},
        student(13) | {"残疾类型": "残" * 31},
        student(14) | {"身份证件类型": "护照", "身份证件号": "E" + "1" * 18},
        student(15) | {"性别": "未知"},
        student(16) | {"姓名": " "},
    ]

    job = roster(world, tmp_path, fine + refused, header=header)

    assert sorted({problem["row"] for problem in job.problems}) == list(range(5, 11))
    assert [(problem["row"], problem["column"]) for problem in job.problems] == [
        (5, "姓名"),
        (6, "家庭住址"),
        (7, "残疾类型"),
        (8, "身份证件号"),
        (9, "性别"),
        (10, "姓名"),
    ]
    job = imported(world, job, skip_invalid=True)
    assert job.result["created"] == 3
    for stored in Student.objects.filter(student_number__in=[row["学籍号"] for row in fine]):
        stored.full_clean(validate_unique=False)


def test_new_students_are_inserted_with_every_default_the_model_gives(world, tmp_path):
    """New rows are inserted without model instances: each student still gets its own public id,
    its update time and the defaults of the columns the file lacks, as Student() would give."""
    header = ["姓名", "学籍号", "身份证件号", "年级", "班级", "是否留守儿童"]
    rows = [student(n) | {"是否留守儿童": "是"} for n in (1, 2)]
    before = timezone.now()

    job = imported(world, roster(world, tmp_path, rows, header=header))

    assert job.result["created"] == 2
    stored = list(Student.objects.filter(student_number__in=[row["学籍号"] for row in rows]).order_by("pk"))
    assert [s.name for s in stored] == [rows[0]["姓名"], rows[1]["姓名"]]
    assert len({s.public_id for s in stored}) == 2
    for s in stored:
        assert (s.status, s.address, s.disability_type, s.school_id) == ("active", "", "", world.school.pk)
        assert s.gender == "M" and s.birth_date == born_on(int(s.name.split("同学")[1]))
        assert s.updated_at >= before
        s.full_clean(validate_unique=False)
        record = StudentCategory.objects.get(student=s)
        assert (record.category, record.start, record.end, record.source, record.note) == (
            Category.LEFT_BEHIND,
            timezone.localdate(),
            None,
            StudentCategory.Source.ROSTER,
            "",
        )
        assert not s.guardians.exists()


def test_a_table_that_starts_below_and_right_of_a1_reports_its_problems_on_the_rows_excel_shows(world, tmp_path):
    """Clerks leave blank rows and columns around a table. python-calamine yields the blank rows
    above it but not the blank columns before it (its issue #177): the row numbers in the problems
    and the hidden-row marks must still be the ones Excel shows."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    faulty = student(2) | {"身份证件号": "410522201609021234"}  # a wrong check character
    rows = [HEADER, *([row.get(label) for label in HEADER] for row in (student(1), faulty, student(3)))]
    for number, values in enumerate(rows, start=4):  # the header on row 4, from column C
        for column, value in enumerate(values, start=3):
            sheet.cell(row=number, column=column, value=value)
    sheet.row_dimensions[7].hidden = True  # student(3)
    path = tmp_path / "名册.xlsx"
    workbook.save(path)

    job = validated(world, path)

    assert [(p["row"], p["column"]) for p in job.problems] == [(6, "身份证件号")]
    assert [row["row"] for row in job.preview["rows"] if row.get("hidden")] == [7]
    assert (job.valid_rows, job.invalid_rows) == (2, 1)
