"""What each role sees when they log in, and the pages' query counts."""

import pytest
from django.urls import reverse

from schools.models import AuditEvent, ImportJob, Role, SchoolClass
from students.models import Student
from tests import factories
from tests.xlsx import roster_workbook_bytes


def test_login_page_speaks_chinese_and_a_failed_login_is_logged(world, client):
    page = client.get(reverse("login"))
    assert "用户名（手机号）" in page.content.decode()
    response = client.post(reverse("login"), {"username": "teacher", "password": "wrong-password"})
    assert "用户名或密码不正确" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED)
    assert event.username == "teacher"


def test_a_teacher_logs_in_and_sees_their_class_and_students(world, client):
    response = client.post(reverse("login"), {"username": "teacher", "password": factories.PASSWORD}, follow=True)
    page = response.content.decode()
    assert "我的学生" in page
    assert "三年级（2）班" in page and "王小明" in page
    assert "周小强" not in page  # a class the teacher does not teach
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, user=world.teacher).exists()


def test_the_teacher_page_shows_category_badges(world, login):
    factories.StudentCategoryFactory(student=world.student, category="left_behind")
    page = login(world.teacher).get("/").content.decode()
    assert "留守儿童" in page


def test_a_school_admin_lands_on_the_school_with_classes_and_import_links(world, login):
    response = login(world.school_admin).get("/", follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("school_detail", args=[world.school.pk])
    assert "城关第一小学" in page and "三年级（2）班" in page and "导入学生名册" in page


def test_a_zone_admin_sees_only_the_zones_schools(world, login):
    page = login(world.zone_admin).get("/").content.decode()
    assert "城关第一小学" in page and "东山中心小学" not in page


def test_an_inspector_sees_every_school_with_assigned_ones_first(world, login):
    factories.SchoolFactory(zone=world.school.zone, name="城关第二小学", code="S0000")
    response = login(world.inspector).get("/")
    rows = response.context["rows"]
    assert rows[0].school == world.school and rows[0].assigned
    assert {row.school.name for row in rows} == {"城关第一小学", "城关第二小学", "东山中心小学"}
    assert "包联" in response.content.decode()


def test_the_bureau_admin_sees_every_school_and_the_admin_site(world, login):
    client = login(world.bureau_admin)
    page = client.get("/").content.decode()
    assert "城关第一小学" in page and "东山中心小学" in page and reverse("admin:index") in page
    assert client.get(reverse("admin:schools_campaign_add")).status_code == 200


@pytest.mark.parametrize("user_key", ["teacher", "school_admin", "zone_admin", "inspector"])
def test_only_the_bureau_admin_reaches_the_admin_site(world, login, user_key):
    response = login(world.users()[user_key]).get(reverse("admin:index"))
    assert response.status_code == 302  # Django admin sends non-staff to its login page


def test_the_teacher_page_query_count_does_not_grow_with_students(world, login, django_assert_max_num_queries):
    client = login(world.teacher)
    with django_assert_max_num_queries(12 + 1) as small:  # + the records sent back by review (oversight)
        client.get("/")
    for _ in range(60):
        student = factories.StudentFactory(school_class=world.school_class)
        factories.StudentCategoryFactory(student=student)
        factories.GuardianFactory(student=student)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get("/")
    assert len(response.context["classes"][0].rows) == 61


def test_the_schools_page_query_count_does_not_grow_with_schools(world, login, django_assert_max_num_queries):
    client = login(world.bureau_admin)
    with django_assert_max_num_queries(15) as small:
        client.get("/")
    for _ in range(30):
        school = factories.SchoolFactory(zone=world.school.zone)
        factories.StudentFactory(school_class=factories.SchoolClassFactory(school=school))
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get("/")
    assert len(response.context["rows"]) == 32


def test_the_class_and_staff_pages_query_counts_do_not_grow(world, login, django_assert_max_num_queries):
    client = login(world.school_admin)
    urls = [reverse("class_detail", args=[world.school_class.pk]), reverse("school_staff", args=[world.school.pk])]
    counts = {}
    for url in urls:
        with django_assert_max_num_queries(15) as captured:
            client.get(url)
        counts[url] = len(captured.captured_queries)
    for _ in range(25):
        teacher = factories.UserFactory(school=world.school)
        factories.TeachingAssignmentFactory(teacher=teacher, school_class=world.school_class)
        factories.StudentCategoryFactory(student=factories.StudentFactory(school_class=world.school_class))
    for url in urls:
        with django_assert_max_num_queries(counts[url]):
            assert client.get(url).status_code == 200


def test_a_teacher_sees_guardian_phone_and_address_an_inspector_sees_them_masked(world, login):
    factories.GuardianFactory(student=world.student, phone="13912345678")
    url = reverse("student_detail", args=[world.student.public_id])
    teacher_page = login(world.teacher).get(url).content.decode()
    assert "13912345678" in teacher_page and "幸福路" in teacher_page
    inspector_page = login(world.inspector).get(url).content.decode()
    assert "13912345678" not in inspector_page and "139****5678" in inspector_page
    assert "幸福路" not in inspector_page
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, user=world.inspector).count() == 1


def test_sensitive_categories_are_hidden_from_the_county_roles(world, login):
    factories.StudentCategoryFactory(student=world.student, category="orphan")
    url = reverse("student_detail", args=[world.student.public_id])
    assert "孤儿" in login(world.teacher).get(url).content.decode()
    assert "孤儿" not in login(world.inspector).get(url).content.decode()


def test_an_imported_account_must_change_its_password_first(world, login):
    world.teacher.must_change_password = True
    world.teacher.save()
    client = login(world.teacher)
    response = client.get("/")
    assert response.status_code == 302 and response.url == reverse("password_change")
    response = client.post(
        reverse("password_change"),
        {
            "old_password": factories.PASSWORD,
            "new_password1": "家访2026-Spring-Walk",
            "new_password2": "家访2026-Spring-Walk",
        },
    )
    assert response.status_code == 302
    world.teacher.refresh_from_db()
    assert not world.teacher.must_change_password
    assert client.get("/").status_code == 200


def test_a_school_admin_adds_the_classes_of_a_grade(world, login):
    client = login(world.school_admin)
    response = client.post(reverse("class_create"), {"grade": "1", "numbers": "1-3，5"}, follow=True)
    assert "已添加 4 个班级" in response.content.decode()
    numbers = SchoolClass.objects.filter(school=world.school, grade=1).values_list("number", flat=True)
    assert sorted(numbers) == [1, 2, 3, 5]
    response = client.post(reverse("class_create"), {"grade": "1", "numbers": "一班"})
    assert "无法识别" in response.content.decode()


def test_a_school_admin_imports_a_roster_through_the_pages(world, login, django_capture_on_commit_callbacks):
    client = login(world.school_admin)
    content = roster_workbook_bytes(
        ["姓名", "性别", "全国学籍号", "年级", "班级", "监护人联系电话"],
        [
            ["吴小雨", "女", "G110105201601010021", "三年级", "(2)班", "13800001111"],
            ["郑小川", "男", "G110105201602020031", "三年级", "9班", "13800002222"],
        ],
    )
    from django.core.files.uploadedfile import SimpleUploadedFile

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("roster_import_upload"), {"file": SimpleUploadedFile("名册.xlsx", content)})
    job = ImportJob.objects.get(kind="roster")
    assert response.url == reverse("roster_import_job", args=[job.public_id])
    page = client.get(response.url).content.decode()
    assert "第 3 行" in page and "没有「三年级9班」这个班级" in page
    assert "只导入 1 行有效数据" in page
    assert not Student.objects.filter(name="吴小雨").exists()  # nothing changes before confirming
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("roster_import_confirm", args=[job.public_id]), {"skip_invalid": "1"})
    page = client.get(reverse("roster_import_job", args=[job.public_id])).content.decode()
    assert "导入完成：新增 1" in page
    assert Student.objects.get(name="吴小雨").school_class == world.school_class
    assert not Student.objects.filter(name="郑小川").exists()


def test_a_school_admin_uploading_a_word_file_gets_a_clear_message(world, login):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = login(world.school_admin).post(
        reverse("roster_import_upload"), {"file": SimpleUploadedFile("名册.xlsx", b"not a spreadsheet at all")}
    )
    assert "不是 Excel 工作簿" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_the_problem_list_downloads_as_a_workbook(world, login):
    from tests.xlsx import read_workbook

    job = ImportJob.objects.create(
        kind="roster",
        school=world.school,
        uploaded_by=world.school_admin,
        file_name="名册.xlsx",
        sha256="0" * 64,
        status=ImportJob.Status.VALIDATED,
        problems=[{"row": 4, "column": "姓名", "message": '=HYPERLINK("http://x")'}],
    )
    response = login(world.school_admin).get(reverse("roster_import_problems", args=[job.public_id]))
    sheet = read_workbook(b"".join(response.streaming_content)).active
    assert [cell.value for cell in sheet[1]] == ["行号", "列", "问题"]
    assert sheet["A2"].value == 4
    assert sheet["C2"].value.startswith("'=")  # neutralised, not a live formula


def test_role_choices_are_in_chinese():
    assert Role.TEACHER.label == "任课教师"
