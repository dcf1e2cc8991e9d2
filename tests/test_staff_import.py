"""The staff import (教职工名单导入) run as the job functions run it: upload, validate, confirm, apply."""

import datetime

import openpyxl
import pytest
from django.contrib.auth import authenticate
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from schools import importing
from schools.importing import read_sheet
from schools.models import AuditEvent, ImportJob, Role, School, SchoolClass, TeachingAssignment, User
from schools.services import import_job_apply, import_job_confirm, import_job_create, import_job_validate
from schools.staff_import import COLUMNS, UNAMBIGUOUS_ALPHABET, StaffImporter, template_workbook
from tests import factories

HEADER = ["姓名", "手机号", "身份", "班主任班级", "任教班级", "任教学科"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WANG = ["王老师", "13900000001", "任课教师", "", "三年级(2)班、四年级(1)班", "数学"]
CHEN = ["陈老师", "139 0000 0002", "班主任", "四年级(1)班", "四年级(1)班", "语文"]


def staff_file(tmp_path, rows, header=HEADER, name="教职工名单.xlsx") -> SimpleUploadedFile:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    workbook.save(path)
    return SimpleUploadedFile(name, path.read_bytes(), content_type=XLSX)


def validate(world, upload, *, school: School | None = None, admin: User | None = None) -> ImportJob:
    job = import_job_create(
        kind=ImportJob.Kind.STAFF,
        school=school or world.school,
        uploaded_by=admin or world.school_admin,
        upload=upload,
    )
    return import_job_validate(job_id=job.pk, importer=StaffImporter())


def apply(job: ImportJob, *, skip_invalid: bool = False) -> ImportJob:
    assert import_job_confirm(job=job, acting_user=job.uploaded_by, skip_invalid=skip_invalid)
    return import_job_apply(job_id=job.pk, importer=StaffImporter())


def run_import(world, tmp_path, rows, header=HEADER, **kwargs) -> ImportJob:
    job = validate(world, staff_file(tmp_path, rows, header), **kwargs)
    assert job.status == ImportJob.Status.VALIDATED, job.error
    assert job.problems == []
    job = apply(job)
    assert job.status == ImportJob.Status.DONE, job.error
    return job


def assignments_of(user: User) -> set[tuple[str, str]]:
    return {(a.school_class.name, a.subject) for a in user.assignments.select_related("school_class")}


def class_of(world, grade: int, number: int) -> SchoolClass:
    return SchoolClass.objects.get(school=world.school, grade=grade, number=number)


# --- a clean file ------------------------------------------------------------------------------


def test_clean_file_creates_accounts_with_one_time_passwords_that_must_be_changed(world, tmp_path):
    job = run_import(world, tmp_path, [WANG, CHEN])

    assert job.result["created"] == 2
    assert job.result["updated"] == 0
    assert job.result["unchanged"] == 0
    accounts = {account["username"]: account for account in job.result["accounts"]}
    assert set(accounts) == {"13900000001", "13900000002"}
    for username, account in accounts.items():
        password = account["password"]
        assert len(password) == 10
        assert set(password) <= set(UNAMBIGUOUS_ALPHABET)
        assert not set(password) & set("0O1lI")
        user = authenticate(username=username, password=password)
        assert user is not None
        assert user.must_change_password
        assert user.school == world.school
        assert user.phone == username
        assert user.role == Role.TEACHER
        assert user.real_name == account["name"]
    assert accounts["13900000002"]["name"] == "陈老师"


def test_one_time_passwords_differ_between_accounts(world, tmp_path):
    job = run_import(world, tmp_path, [WANG, CHEN])

    passwords = [account["password"] for account in job.result["accounts"]]
    assert len(set(passwords)) == 2


def test_head_teacher_and_teaching_assignments_are_set_as_in_the_file(world, tmp_path):
    run_import(world, tmp_path, [WANG, CHEN])

    wang = User.objects.get(username="13900000001")
    chen = User.objects.get(username="13900000002")
    assert assignments_of(wang) == {("三年级（2）班", "数学"), ("四年级（1）班", "数学")}
    assert assignments_of(chen) == {("四年级（1）班", "语文")}
    assert class_of(world, 4, 1).head_teacher == chen
    # The head teacher of 三年级(2)班 is not in the file: the import leaves her class alone.
    assert class_of(world, 3, 2).head_teacher == world.head_teacher
    assert chen.is_head_teacher
    assert not wang.is_head_teacher


def test_preview_lists_each_new_account_with_its_classes(world, tmp_path):
    job = validate(world, staff_file(tmp_path, [WANG, CHEN]))

    assert job.valid_rows == 2
    assert job.preview["created"] == 2
    assert job.preview["updated"] == 0
    assert job.preview["rows"] == [
        {"row": 2, "name": "王老师", "class": "三年级（2）班、四年级（1）班", "action": "新增", "changes": ""},
        {"row": 3, "name": "陈老师", "class": "四年级（1）班（班主任）", "action": "新增", "changes": ""},
    ]
    assert not User.objects.filter(username__in=["13900000001", "13900000002"]).exists()


def test_school_admin_row_gets_the_school_admin_role_and_may_teach(world, tmp_path):
    run_import(world, tmp_path, [["钱校长", "13900000009", "校长", "", "四年级(1)班", "道德与法治"]])

    principal = User.objects.get(username="13900000009")
    assert principal.role == Role.SCHOOL_ADMIN
    assert assignments_of(principal) == {("四年级（1）班", "道德与法治")}


def test_classes_may_be_written_the_ways_clerks_write_them(world, tmp_path):
    factories.SchoolClassFactory(school=world.school, school_year=world.school_class.school_year, grade=3, number=1)
    rows = [
        ["王老师", "13900000001", "", "", "三年级(1)班、(2)班", "数学"],
        ["陈老师", "13900000002", "", "四年级 (1)班", "三年级 (1)班，四年级1班", "语文"],
        ["周老师", "13900000003", "", "", "三年级（1）班；三年级2班 四年级(1)班", "美术"],
    ]
    run_import(world, tmp_path, rows)

    assert assignments_of(User.objects.get(username="13900000001")) == {
        ("三年级（1）班", "数学"),
        ("三年级（2）班", "数学"),
    }
    chen = User.objects.get(username="13900000002")
    assert assignments_of(chen) == {("三年级（1）班", "语文"), ("四年级（1）班", "语文")}
    assert class_of(world, 4, 1).head_teacher == chen
    assert len(assignments_of(User.objects.get(username="13900000003"))) == 3


# --- rows with problems ------------------------------------------------------------------------

GOOD = ["王老师", "13900000001", "班主任", "三年级(2)班", "三年级(2)班", "数学"]


@pytest.mark.parametrize(
    ("bad_row", "column", "message"),
    [
        pytest.param(["", "13900000002", "", "", "", ""], "姓名", "姓名不能为空", id="name missing"),
        pytest.param(["王" * 51, "13900000002", "", "", "", ""], "姓名", "姓名超过 50 个字", id="name too long"),
        pytest.param(["陈老师", "", "", "", "", ""], "手机号", "手机号不能为空", id="phone missing"),
        pytest.param(["陈老师", "1390000", "", "", "", ""], "手机号", "「1390000」不是有效的手机号", id="phone short"),
        pytest.param(["陈老师", "0371-12345678", "", "", "", ""], "手机号", "是固定电话", id="landline"),
        pytest.param(["陈老师", "139-0000-0001", "", "", "", ""], "手机号", "与第 2 行的手机号重复", id="dup phone"),
        pytest.param(["陈老师", "13900000002", "班长", "", "", ""], "身份", "「班长」不是可识别的身份", id="role"),
        pytest.param(
            ["陈老师", "13900000002", "班主任", "", "四年级(1)班", ""],
            "班主任班级",
            "身份是班主任，但没有填写班主任班级",
            id="head teacher without class",
        ),
        pytest.param(
            ["陈老师", "13900000002", "班主任", "三年级(2)班", "", ""],
            "班主任班级",
            "与第 2 行的班主任班级相同",
            id="same head class",
        ),
        pytest.param(
            ["陈老师", "13900000002", "班主任", "五年级(3)班", "", ""],
            "班主任班级",
            "本校当前学年没有「五年级(3)班」这个班级，请先在「班级管理」中添加",
            id="unknown head class",
        ),
        pytest.param(
            ["陈老师", "13900000002", "班主任", "四年级(1)班、三年级(2)班", "", ""],
            "班主任班级",
            "班主任班级只能填写一个班级",
            id="two head classes",
        ),
        pytest.param(
            ["陈老师", "13900000002", "", "", "四年级(1)班、五年级(3)班", ""],
            "任教班级",
            "本校当前学年没有「五年级(3)班」这个班级，请先在「班级管理」中添加",
            id="unknown taught class",
        ),
        pytest.param(
            # 三年级(1)班 exists, but in the other school.
            ["陈老师", "13900000002", "", "", "三年级(1)班", ""],
            "任教班级",
            "本校当前学年没有「三年级(1)班」这个班级",
            id="class of another school",
        ),
        pytest.param(
            ["陈老师", "13900000002", "", "", "音乐班", ""],
            "任教班级",
            "「音乐班」不是可识别的班级，请写成“三年级(2)班”",
            id="unreadable class",
        ),
        pytest.param(
            ["陈老师", "13900000002", "", "", "四年级(1)班", "科" * 31],
            "任教学科",
            "任教学科超过 30 个字",
            id="subject too long",
        ),
    ],
)
def test_bad_row_is_reported_with_its_row_and_column_and_nothing_is_written(world, tmp_path, bad_row, column, message):
    users_before = User.objects.count()
    assignments_before = TeachingAssignment.objects.count()

    job = validate(world, staff_file(tmp_path, [GOOD, bad_row]))

    assert job.status == ImportJob.Status.VALIDATED
    assert (job.valid_rows, job.invalid_rows) == (1, 1)
    assert len(job.problems) == 1
    problem = job.problems[0]
    assert (problem["row"], problem["column"]) == (3, column)
    assert message in problem["message"]
    # Without choosing to skip the invalid row, nothing can be applied.
    assert not import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=False)
    job = import_job_apply(job_id=job.pk, importer=StaffImporter())
    assert job.status == ImportJob.Status.VALIDATED
    assert User.objects.count() == users_before
    assert TeachingAssignment.objects.count() == assignments_before
    assert class_of(world, 3, 2).head_teacher == world.head_teacher


def test_class_of_last_school_year_is_not_a_class_of_the_current_year(world, tmp_path):
    last_year = factories.SchoolYearFactory(
        name="2000-2001", start=datetime.date(2000, 8, 1), end=datetime.date(2001, 7, 31)
    )
    factories.SchoolClassFactory(school=world.school, school_year=last_year, grade=5, number=1)

    job = validate(world, staff_file(tmp_path, [["陈老师", "13900000002", "", "", "五年级(1)班", ""]]))

    assert job.problems == [
        {
            "row": 2,
            "column": "任教班级",
            "message": "本校当前学年没有「五年级(1)班」这个班级，请先在「班级管理」中添加",
        }
    ]


def test_every_problem_of_a_row_is_reported(world, tmp_path):
    job = validate(world, staff_file(tmp_path, [["", "12", "老板", "九年级(9)班", "", ""]]))

    assert [(p["row"], p["column"]) for p in job.problems] == [
        (2, "姓名"),
        (2, "手机号"),
        (2, "身份"),
        (2, "班主任班级"),
    ]
    assert job.valid_rows == 0
    assert not import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=True)


def test_file_without_the_required_columns_fails_with_a_reason(world, tmp_path):
    job = validate(world, staff_file(tmp_path, [["王老师", "数学"]], header=["姓名", "任教学科"]))

    assert job.status == ImportJob.Status.FAILED
    assert "缺少必填列：手机号" in job.error


def test_import_without_a_school_year_fails_with_a_reason(db, tmp_path):
    school = factories.SchoolFactory()
    admin = factories.UserFactory(username="school-admin", role=Role.SCHOOL_ADMIN, school=school)
    upload = staff_file(tmp_path, [WANG])

    job = import_job_create(kind=ImportJob.Kind.STAFF, school=school, uploaded_by=admin, upload=upload)
    job = import_job_validate(job_id=job.pk, importer=StaffImporter())

    assert job.status == ImportJob.Status.FAILED
    assert "尚未设置当前学年" in job.error


def test_skipping_invalid_rows_imports_only_the_valid_ones(world, tmp_path):
    bad = ["陈老师", "13900000002", "班主任", "五年级(3)班", "", ""]
    job = validate(world, staff_file(tmp_path, [GOOD, bad]))

    job = apply(job, skip_invalid=True)

    assert job.status == ImportJob.Status.DONE
    assert job.result["created"] == 1
    assert job.result["skipped_rows"] == 1
    assert [account["username"] for account in job.result["accounts"]] == ["13900000001"]
    assert not User.objects.filter(username="13900000002").exists()
    assert class_of(world, 3, 2).head_teacher.username == "13900000001"


# --- accounts that already exist ---------------------------------------------------------------


def test_phone_already_used_by_another_schools_teacher_is_refused(world, tmp_path):
    elsewhere = factories.UserFactory(username="13911112222", real_name="赵老师", school=world.other_school)

    job = validate(world, staff_file(tmp_path, [GOOD, ["赵老师", "13911112222", "", "", "四年级(1)班", ""]]))

    assert len(job.problems) == 1
    problem = job.problems[0]
    assert (problem["row"], problem["column"]) == (3, "手机号")
    assert "已是其他单位的登录账号" in problem["message"]
    assert world.other_school.name not in problem["message"]
    job = apply(job, skip_invalid=True)
    elsewhere.refresh_from_db()
    assert elsewhere.school == world.other_school
    assert not elsewhere.assignments.exists()


def test_phone_already_used_by_a_bureau_account_is_refused(world, tmp_path):
    factories.UserFactory(username="13911113333", role=Role.INSPECTOR, school=None)

    job = validate(world, staff_file(tmp_path, [["刘老师", "13911113333", "", "", "", ""]]))

    assert job.problems[0]["column"] == "手机号"
    assert "已是其他单位的登录账号" in job.problems[0]["message"]


def test_existing_account_of_the_school_is_updated_and_keeps_its_password(world, tmp_path):
    existing = factories.UserFactory(username="13900000005", real_name="钱老师", school=world.school)

    job = run_import(world, tmp_path, [["钱晓", "13900000005", "", "", "四年级(1)班", "英语"]])

    assert job.result["created"] == 0
    assert job.result["updated"] == 1
    assert job.result["accounts"] == []
    existing.refresh_from_db()
    assert existing.real_name == "钱晓"
    assert existing.phone == "13900000005"
    assert not existing.must_change_password
    assert authenticate(username="13900000005", password=factories.PASSWORD) == existing
    assert assignments_of(existing) == {("四年级（1）班", "英语")}


def test_account_with_the_phone_on_record_under_another_login_name_is_matched(world, tmp_path):
    world.teacher.phone = "13900000006"
    world.teacher.save(update_fields=["phone"])

    job = run_import(world, tmp_path, [["张老师", "13900000006", "", "", "四年级(1)班", "英语"]])

    assert job.result["created"] == 0
    assert job.result["updated"] == 1
    assert not User.objects.filter(username="13900000006").exists()
    assert assignments_of(world.teacher) == {("四年级（1）班", "英语")}


def test_empty_role_keeps_an_existing_admins_role_and_an_explicit_one_changes_it(world, tmp_path):
    kept = factories.UserFactory(username="13900000007", role=Role.SCHOOL_ADMIN, school=world.school)
    demoted = factories.UserFactory(username="13900000008", role=Role.SCHOOL_ADMIN, school=world.school)

    run_import(
        world,
        tmp_path,
        [["甲", "13900000007", "", "", "", ""], ["乙", "13900000008", "任课教师", "", "四年级(1)班", ""]],
    )

    kept.refresh_from_db()
    demoted.refresh_from_db()
    assert kept.role == Role.SCHOOL_ADMIN
    assert demoted.role == Role.TEACHER


def test_file_cannot_take_the_role_of_the_schools_only_admin(db, tmp_path):
    school = factories.SchoolFactory()
    factories.SchoolClassFactory(school=school, grade=1, number=1)
    admin = factories.UserFactory(username="13900000008", real_name="孙校长", role=Role.SCHOOL_ADMIN, school=school)
    upload = staff_file(tmp_path, [["孙校长", "13900000008", "任课教师", "", "一年级(1)班", ""]])

    job = import_job_create(kind=ImportJob.Kind.STAFF, school=school, uploaded_by=admin, upload=upload)
    job = import_job_validate(job_id=job.pk, importer=StaffImporter())

    assert job.problems == [
        {"row": 2, "column": "身份", "message": "导入后本校将没有学校管理员，请至少保留一名学校管理员"}
    ]


def test_deactivated_account_of_the_school_is_enabled_again(world, tmp_path):
    returning = factories.UserFactory(username="13900000005", school=world.school, is_active=False)

    job = validate(world, staff_file(tmp_path, [["钱老师", "13900000005", "", "", "", ""]]))
    assert "重新启用账号" in job.preview["rows"][0]["changes"]
    apply(job)

    returning.refresh_from_db()
    assert returning.is_active


# --- importing again ---------------------------------------------------------------------------


def test_reimporting_the_same_file_changes_nothing(world, tmp_path):
    first = run_import(world, tmp_path, [WANG, CHEN])
    password = first.result["accounts"][0]["password"]
    username = first.result["accounts"][0]["username"]
    assignments = set(TeachingAssignment.objects.values_list("teacher_id", "school_class_id", "subject"))
    heads = set(SchoolClass.objects.values_list("pk", "head_teacher_id"))

    again = validate(world, staff_file(tmp_path, [WANG, CHEN]))
    assert (again.preview["created"], again.preview["updated"], again.preview["unchanged"]) == (0, 0, 2)
    assert again.preview["rows"] == []
    again = apply(again)

    assert again.result["created"] == 0
    assert again.result["updated"] == 0
    assert again.result["unchanged"] == 2
    assert again.result["accounts"] == []
    assert set(TeachingAssignment.objects.values_list("teacher_id", "school_class_id", "subject")) == assignments
    assert set(SchoolClass.objects.values_list("pk", "head_teacher_id")) == heads
    assert authenticate(username=username, password=password) is not None


def test_corrected_file_moves_and_renames_a_teacher(world, tmp_path):
    run_import(world, tmp_path, [WANG, CHEN])
    chen = User.objects.get(username="13900000002")
    moved = ["陈晓", "13900000002", "班主任", "三年级(2)班", "三年级(2)班", "数学"]

    job = validate(world, staff_file(tmp_path, [WANG, moved]))
    assert job.preview["rows"] == [
        {
            "row": 3,
            "name": "陈晓",
            "class": "三年级（2）班（班主任）",
            "action": "更新",
            "changes": "姓名、班主任班级、任教班级",
        }
    ]
    job = apply(job)

    assert (job.result["created"], job.result["updated"], job.result["unchanged"]) == (0, 1, 1)
    chen.refresh_from_db()
    assert chen.real_name == "陈晓"
    assert class_of(world, 3, 2).head_teacher == chen
    assert class_of(world, 4, 1).head_teacher is None
    assert assignments_of(chen) == {("三年级（2）班", "数学")}
    assert assignments_of(User.objects.get(username="13900000001")) == {
        ("三年级（2）班", "数学"),
        ("四年级（1）班", "数学"),
    }


def test_changed_subject_is_recorded_on_the_classes_kept(world, tmp_path):
    run_import(world, tmp_path, [WANG])

    job = validate(world, staff_file(tmp_path, [["王老师", "13900000001", "", "", "四年级(1)班", "科学"]]))
    assert job.preview["rows"][0]["changes"] == "任教班级、任教学科"
    apply(job)

    assert assignments_of(User.objects.get(username="13900000001")) == {("四年级（1）班", "科学")}


def test_teacher_in_the_file_without_a_head_class_loses_the_headship(world, tmp_path):
    run_import(world, tmp_path, [WANG, CHEN])

    run_import(world, tmp_path, [WANG, ["陈老师", "13900000002", "", "", "四年级(1)班", "语文"]])

    assert class_of(world, 4, 1).head_teacher is None
    assert class_of(world, 3, 2).head_teacher == world.head_teacher


def test_file_without_class_columns_leaves_classes_and_headship_alone(world, tmp_path):
    run_import(world, tmp_path, [WANG, CHEN])
    chen = User.objects.get(username="13900000002")

    job = run_import(world, tmp_path, [["陈晓", "13900000002"]], header=["姓名", "手机号"])

    assert job.result["updated"] == 1
    chen.refresh_from_db()
    assert chen.real_name == "陈晓"
    assert class_of(world, 4, 1).head_teacher == chen
    assert assignments_of(chen) == {("四年级（1）班", "语文")}


def test_file_without_subject_column_keeps_the_subjects_already_recorded(world, tmp_path):
    run_import(world, tmp_path, [WANG])

    job = run_import(
        world,
        tmp_path,
        [["王老师", "13900000001", "", "三年级(2)班、四年级(1)班"]],
        header=["姓名", "手机号", "身份", "任教班级"],
    )

    assert job.result["updated"] == 0
    assert assignments_of(User.objects.get(username="13900000001")) == {
        ("三年级（2）班", "数学"),
        ("四年级（1）班", "数学"),
    }


# --- the job around the importer ---------------------------------------------------------------


def test_progress_is_reported_while_checking(world, tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "PROGRESS_EVERY", 2)
    rows = [[f"教师{n}", f"1390000010{n}", "", "", "", ""] for n in range(5)]
    staff_file(tmp_path, rows, name="staff.xlsx")
    reported = []

    StaffImporter().check(
        sheet=read_sheet(tmp_path / "staff.xlsx", COLUMNS), school=world.school, progress=reported.append
    )

    assert reported == [2, 4]


def test_applying_takes_the_same_number_of_queries_for_few_or_many_rows(world, tmp_path):
    def queries_to_apply(first: int, count: int) -> int:
        rows = [
            [f"教师{n}", f"139{n:08d}", "", "", "三年级(2)班、四年级(1)班", "语文"] for n in range(first, first + count)
        ]
        job = validate(world, staff_file(tmp_path, rows))
        assert import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=False)
        with CaptureQueriesContext(connection) as context:
            job = import_job_apply(job_id=job.pk, importer=StaffImporter())
        assert job.result["created"] == count
        return len(context.captured_queries)

    assert queries_to_apply(100, 3) == queries_to_apply(200, 40)


def test_one_time_passwords_stay_out_of_the_audit_log(world, tmp_path):
    job = run_import(world, tmp_path, [WANG, CHEN])

    event = AuditEvent.objects.get(object_id=str(job.public_id), detail__stage="applied")
    assert event.detail["created"] == 2
    assert "accounts" not in event.detail
    for account in job.result["accounts"]:
        assert account["password"] not in str(event.detail)


# --- the template ------------------------------------------------------------------------------


def test_staff_template_has_every_column_an_example_and_instructions():
    workbook = template_workbook()

    sheet = workbook.worksheets[0]
    header = list(sheet[1])
    assert [cell.value for cell in header] == [column.label for column in COLUMNS]
    for cell, column in zip(header, COLUMNS, strict=True):
        assert cell.font.bold
        assert (cell.comment is not None) == column.required
        assert sheet.column_dimensions[cell.column_letter].width >= 10
    assert sheet.max_row == 2
    assert workbook.sheetnames == ["教职工名单", "填写说明"]
    guide = [row[0] for row in workbook["填写说明"].iter_rows(values_only=True)]
    for column in COLUMNS:
        assert column.label in guide


def test_staff_template_example_row_imports_once_its_class_exists(db, tmp_path):
    factories.SchoolYearFactory()
    school = factories.SchoolFactory()
    admin = factories.UserFactory(username="school-admin", role=Role.SCHOOL_ADMIN, school=school)
    path = tmp_path / "模板.xlsx"
    template_workbook().save(path)

    def import_template() -> ImportJob:
        upload = SimpleUploadedFile("模板.xlsx", path.read_bytes(), content_type=XLSX)
        job = import_job_create(kind=ImportJob.Kind.STAFF, school=school, uploaded_by=admin, upload=upload)
        return import_job_validate(job_id=job.pk, importer=StaffImporter())

    job = import_template()
    assert {problem["message"] for problem in job.problems} == {
        "本校当前学年没有「三年级(2)班」这个班级，请先在「班级管理」中添加"
    }

    school_class = factories.SchoolClassFactory(school=school, grade=3, number=2)
    job = import_template()
    assert job.problems == []
    job = apply(job)

    assert job.status == ImportJob.Status.DONE
    assert job.result["created"] == 1
    teacher = User.objects.get(username=job.result["accounts"][0]["username"])
    school_class.refresh_from_db()
    assert school_class.head_teacher == teacher
    assert assignments_of(teacher) == {("三年级（2）班", "语文")}


def test_the_one_time_passwords_are_shown_once_and_then_no_longer_kept(world, tmp_path, login):
    job = run_import(world, tmp_path, [WANG, CHEN])
    url = reverse("staff_import_job", args=[job.public_id])
    client = login(world.school_admin)

    first = client.get(url).content.decode()
    passwords = [account["password"] for account in job.result["accounts"]]
    assert all(password in first for password in passwords)
    assert "只显示这一次" in first

    second = client.get(url).content.decode()
    assert not any(password in second for password in passwords)
    assert "已发放" in second and "王老师" in second
    job.refresh_from_db()
    assert all(account["password"] == "" for account in job.result["accounts"])
    assert not any(password in str(job.result) for password in passwords)


def test_an_import_whose_task_was_lost_is_queued_again_after_five_minutes(world, tmp_path):
    import time_machine

    from homevisit.celery import app
    from schools.tasks import IMPORT_TASKS, import_jobs_stuck_requeue

    upload = staff_file(tmp_path, [WANG])
    job = import_job_create(
        kind=ImportJob.Kind.STAFF, school=world.school, uploaded_by=world.school_admin, upload=upload
    )
    assert import_jobs_stuck_requeue() == []  # just uploaded: its task may still be on its way

    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=6)):
        assert import_jobs_stuck_requeue() == [job.pk]
    job.refresh_from_db()
    assert job.status == ImportJob.Status.VALIDATED and job.valid_rows == 1

    assert import_job_confirm(job=job, acting_user=world.school_admin, skip_invalid=False)
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=6)):
        assert import_jobs_stuck_requeue() == [job.pk]
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert User.objects.filter(username="13900000001").count() == 1
    assert import_jobs_stuck_requeue() == []
    # The roster's tasks live in another app; the sweep finds them by name too.
    assert all(name in app.tasks for pair in IMPORT_TASKS.values() for name in pair)
