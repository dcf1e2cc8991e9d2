"""What each role sees of a student's personal data (DESIGN §8), and that no page of it is cached.

Teachers and the school admin work with the student and see the record whole. The county's roles
(zone admin, inspector, bureau admin) read figures and masked identifiers: no guardian phone, no
home address, no ID number, no sensitive category (disability, psychological state, family crisis,
orphan, unsupported) — not even through the 需再访 status it would explain — no notes on the home
and no photos of it.
"""

import datetime
import io

import openpyxl
import pytest
from django.contrib.admin.sites import site as admin_site
from django.urls import reverse
from django.utils import timezone

from schools.privacy import redact_contacts
from students.models import SENSITIVE_CATEGORIES, Category, Student
from tests import factories
from tests.test_dashboards import StatsBuilder
from visits.models import Attachment, Method, Revision, Suggestion, Visit

WORKS_WITH = ["teacher", "head_teacher", "school_admin"]
COUNTY = ["zone_admin", "inspector", "bureau_admin"]

GUARDIAN_PHONE = "13912345678"
MASKED_GUARDIAN_PHONE = "139****5678"
ID_NUMBER = "11010519491231002X"
MASKED_ID_NUMBER = "110105********002X"
ADDRESS = "城关镇幸福路 8 号"
SITUATION = "孩子近期情绪低落，正在接受心理辅导。"
MEASURES = "班主任每日一问，心理老师每周谈心。"
SUGGESTION = "有事请打我电话 13812345678"
PSYCHOLOGICAL = str(Category.PSYCHOLOGICAL.label)


@pytest.fixture
def record(world):
    """王小明 with a guardian, an ID number, a home address, a disability type and a psychological
    category (sensitive and special); one in-home visit this campaign, so that a teacher sees 需再访;
    the visit with notes, a suggestion, a photo and a correction."""
    student = world.student
    student.id_number = ID_NUMBER
    student.address = ADDRESS
    student.disability_type = "听力残疾"
    student.birth_date = datetime.date(2017, 3, 9)
    student.save()
    factories.GuardianFactory(student=student, name="王芳", relation="母亲", phone=GUARDIAN_PHONE)
    factories.StudentCategoryFactory(student=student, category=Category.PSYCHOLOGICAL)
    phase = factories.PhaseFactory()
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=timezone.now() - datetime.timedelta(hours=3),
        phase=phase,
        method=Method.IN_HOME,
        status=Visit.Status.SUBMITTED,
        submitted_at=timezone.now(),
        guardians_met=f"母亲 王芳 {GUARDIAN_PHONE}",
        situation=SITUATION,
        measures=MEASURES,
        integrity_declared=True,
    )
    visit.students.set([student])
    Suggestion.objects.create(visit=visit, text=SUGGESTION, reply="好的")
    Revision.objects.create(visit=visit, changed_by=world.teacher, changes={"情况记录": ["原来的情况记录", SITUATION]})
    attachment = Attachment.objects.create(
        visit=visit, original_name="家门口.jpg", content_type="image/jpeg", size=3, uploaded_by=world.teacher
    )
    attachment.path.parent.mkdir(parents=True, exist_ok=True)
    attachment.path.write_bytes(b"abc")
    return {"student": student, "visit": visit, "attachment": attachment}


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


# --- the student's page ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", WORKS_WITH)
def test_those_who_work_with_the_student_see_the_record_whole(world, login, record, role):
    page = _page(login(world.users()[role]), reverse("student_detail", args=[record["student"].public_id]))
    for whole in (GUARDIAN_PHONE, ID_NUMBER, ADDRESS, "听力残疾", PSYCHOLOGICAL, "需再访", "2017-03-09"):
        assert whole in page, whole


@pytest.mark.parametrize("role", COUNTY)
def test_the_county_roles_see_a_student_masked_and_without_sensitive_categories(world, login, record, role):
    student = record["student"]
    page = _page(login(world.users()[role]), reverse("student_detail", args=[student.public_id]))
    assert MASKED_GUARDIAN_PHONE in page and MASKED_ID_NUMBER in page and "2017年" in page
    for hidden in (GUARDIAN_PHONE, ID_NUMBER, student.student_number, ADDRESS, "听力残疾", PSYCHOLOGICAL, "2017-03-09"):
        assert hidden not in page, hidden
    # 需再访 is shown only to special students: it would tell that the category hidden above exists.
    assert "需再访" not in page and 'data-status="visited"' in page


@pytest.mark.parametrize("category", SENSITIVE_CATEGORIES)
@pytest.mark.parametrize("role", WORKS_WITH + COUNTY)
def test_sensitive_categories_show_only_to_the_students_teachers_and_school_admin_on_every_list(
    world, login, role, category
):
    factories.StudentCategoryFactory(student=world.student, category=category)
    factories.StudentCategoryFactory(student=world.student, category=Category.LEFT_BEHIND)
    client = login(world.users()[role])
    label = str(Category(category).label)
    for url in (
        reverse("student_detail", args=[world.student.public_id]),
        reverse("class_detail", args=[world.school_class.pk]),
        reverse("student_list"),
    ):
        page = _page(client, url)
        assert (label in page) == (role in WORKS_WITH), (url, label)
        assert "留守儿童" in page, url


@pytest.mark.parametrize("role", COUNTY)
def test_the_county_roles_see_masked_student_numbers_on_the_class_page_and_the_list(world, login, role):
    client = login(world.users()[role])
    for url in (reverse("class_detail", args=[world.school_class.pk]), reverse("student_list")):
        assert world.student.student_number not in _page(client, url)


# --- the visit record, its print and its photos --------------------------------------------------


@pytest.mark.parametrize("role", WORKS_WITH)
def test_the_school_sees_the_visit_record_whole_with_its_photos(world, login, record, role):
    client = login(world.users()[role])
    visit, attachment = record["visit"], record["attachment"]
    page = _page(client, reverse("visit_detail", args=[visit.public_id]))
    for whole in (GUARDIAN_PHONE, SITUATION, MEASURES, SUGGESTION, "原来的情况记录"):
        assert whole in page, whole
    assert reverse("attachment_file", args=[attachment.public_id]) in page
    assert client.get(reverse("attachment_file", args=[attachment.public_id])).status_code == 200
    printed = _page(client, reverse("visit_print", args=[visit.public_id]))
    for whole in (GUARDIAN_PHONE, SITUATION, MEASURES, SUGGESTION):
        assert whole in printed, whole


@pytest.mark.parametrize("role", COUNTY)
def test_the_county_roles_read_a_visit_without_notes_numbers_or_photos(world, login, record, role):
    client = login(world.users()[role])
    visit, attachment = record["visit"], record["attachment"]
    for url in (reverse("visit_detail", args=[visit.public_id]), reverse("visit_print", args=[visit.public_id])):
        page = _page(client, url)
        for hidden in (GUARDIAN_PHONE, "13812345678", SITUATION, MEASURES, "原来的情况记录", ID_NUMBER):
            assert hidden not in page, (url, hidden)
        # What they do read: who, when, how, the guardian met and the suggestion, numbers masked.
        for shown in ("张老师", "上门家访", "王小明", "母亲 王芳 139****5678", "有事请打我电话 138****5678"):
            assert shown in page, (url, shown)
        assert f"已填写 {len(SITUATION)} 字" in page and "仅学生的任课教师和学校管理员可见" in page
        assert reverse("attachment_file", args=[attachment.public_id]) not in page
    detail = _page(client, reverse("visit_detail", args=[visit.public_id]))
    assert "共 1 个附件" in detail and "修改了：情况记录" in detail
    assert client.get(reverse("attachment_file", args=[attachment.public_id])).status_code == 404


@pytest.mark.parametrize("role", COUNTY)
def test_attachments_are_never_visible_to_the_county_roles(world, record, role):
    assert not Attachment.objects.visible_to(world.users()[role]).exists()


def test_a_teacher_of_another_class_sees_no_photo_of_a_visit_they_may_not_see(world, record):
    colleague = factories.UserFactory(school=world.school)
    assert not Attachment.objects.visible_to(colleague).exists()
    assert list(Attachment.objects.visible_to(world.teacher)) == [record["attachment"]]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("母亲 王芳 13912345678", "母亲 王芳 139****5678"),
        ("电话 139-1234-5678", "电话 139****5678"),
        ("+86 139 1234 5678", "139****5678"),
        ("身份证 11010519491231002X。", "身份证 110105********002X。"),
        ("老身份证 110105491231002", "老身份证 110105*****1002"),
        ("固话 0371-66880011", "固话 037*****0011"),
        ("2026年11月29日 10:30 到家，三人在家", "2026年11月29日 10:30 到家，三人在家"),
        ("学籍号 G110105201501011234", "学籍号 G110105********1234"),
        ("", ""),
    ],
)
def test_numbers_in_free_text_are_masked_for_readers_of_masked_identifiers(text, shown):
    assert redact_contacts(text) == shown


# --- exports -----------------------------------------------------------------------------------


def _cells(response) -> list[str]:
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return [str(value) for sheet in workbook for row in sheet.iter_rows(values_only=True) for value in row if value]


@pytest.fixture
def stats(world):
    campaign = factories.CampaignFactory()
    if not campaign.phases.exists():
        factories.PhaseFactory(campaign=campaign)
    build = StatsBuilder(campaign)
    build.county(students_required=3, students_visited=1)
    build.zone(world.school.zone, students_required=2)
    build.school(world.school, students_required=2)
    build.school_class(world.school_class, students_required=1)
    build.teacher(world.teacher, students_assigned=1, students_visited=1)
    return build


@pytest.mark.parametrize("role", ["school_admin", *COUNTY])
def test_the_county_exports_hold_figures_and_names_of_units_and_staff_only(world, login, record, stats, role):
    student = record["student"]
    client = login(world.users()[role])
    sheet_url = reverse("statistics_sheet") + f"?level=school&unit={world.school.pk}"
    for url in (sheet_url, reverse("teacher_assessment_xlsx", args=[world.school.pk])):
        response = client.get(url)
        assert response.status_code == 200, url
        text = "\n".join(_cells(response))
        assert "城关第一小学" in text or "张老师" in text
        for personal in (student.name, student.student_number, ID_NUMBER, GUARDIAN_PHONE, ADDRESS, "王芳"):
            assert personal not in text, (url, personal)


def test_the_visit_export_is_the_school_admins_and_masks_the_student_number(world, login, record):
    response = login(world.school_admin).get(reverse("visit_export"))
    text = "\n".join(_cells(response))
    assert "王小明" in text and record["student"].student_number not in text and ID_NUMBER not in text
    for role in COUNTY:
        assert login(world.users()[role]).get(reverse("visit_export")).status_code == 404


TYPED_FORMS = {
    "139.0000.3333": "139****3333",
    "１３９００００４４４４": "139****4444",
    "110105 19491231 002X": "110105********002X",
    "110105-19491231-002X": "110105********002X",
    "+86-139-0000-1111": "139****1111",
}


@pytest.fixture
def typed_numbers(record):
    """The forms the probe found shown in full, typed into every free-text field of the visit."""
    visit = record["visit"]
    typed = "，".join(TYPED_FORMS)
    Visit.objects.filter(pk=visit.pk).update(guardians_met=f"母亲 {typed}", situation=typed, measures=typed)
    Suggestion.objects.create(visit=visit, text=f"联系 {typed}", reply=f"回电 {typed}")
    return typed


def test_the_school_admins_visit_export_masks_numbers_typed_into_free_text(world, login, record, typed_numbers):
    text = "\n".join(_cells(login(world.school_admin).get(reverse("visit_export"))))
    for written, masked in TYPED_FORMS.items():
        assert written not in text and masked in text, written
    assert GUARDIAN_PHONE not in text and SUGGESTION not in text


def test_the_explicit_full_export_shows_numbers_as_typed_and_is_audited_as_full(world, login, record, typed_numbers):
    from schools.models import AuditEvent

    text = "\n".join(_cells(login(world.school_admin).get(reverse("visit_export") + "?full=1")))
    for written in TYPED_FORMS:
        assert written in text, written
    assert record["student"].student_number in text
    event = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).latest("pk")
    assert event.detail["full"] is True and event.user == world.school_admin


@pytest.mark.parametrize("role", COUNTY)
@pytest.mark.parametrize("page", ["visit_detail", "visit_print"])
def test_the_county_pages_mask_every_typed_form(world, login, record, typed_numbers, role, page):
    html = _page(login(world.users()[role]), reverse(page, args=[record["visit"].public_id]))
    for written, masked in TYPED_FORMS.items():
        assert written not in html and masked in html, written


@pytest.mark.parametrize("role", COUNTY)
def test_the_county_roles_read_the_schools_visit_list_without_notes_and_audited(
    world, login, record, typed_numbers, role
):
    from schools.models import AuditEvent

    user = world.users()[role]
    html = _page(login(user), reverse("school_visit_list", args=[world.school.pk]))
    assert "王小明" in html and "张老师" in html
    assert SITUATION not in html and MEASURES not in html and "家门口.jpg" not in html
    assert PSYCHOLOGICAL not in html and str(Category.DISABILITY.label) not in html  # no sensitive filter
    event = AuditEvent.objects.filter(user=user, action=AuditEvent.Action.VIEW).latest("pk")
    assert event.object_type == "schools.School" and event.object_id == str(world.school.pk)


@pytest.mark.parametrize("role", COUNTY)
def test_the_county_export_masks_numbers_and_leaves_out_the_notes(world, login, record, typed_numbers, role):
    from schools.models import AuditEvent

    user = world.users()[role]
    response = login(user).get(reverse("school_visit_export", args=[world.school.pk]) + "?full=1")
    text = "\n".join(_cells(response))
    assert "王小明" in text and "接待家长" in text and "情况记录" not in text and "商定措施" not in text
    assert record["student"].student_number not in text
    for written, masked in TYPED_FORMS.items():
        assert written not in text and masked in text, written
    event = AuditEvent.objects.filter(user=user, action=AuditEvent.Action.EXPORT).latest("pk")
    assert event.detail["full"] is False and event.detail["rows"] == 1


def test_the_county_visit_list_lists_only_submitted_visits_in_a_fixed_number_of_queries(
    world, login, record, django_assert_max_num_queries
):
    draft = Visit.objects.create(
        school=world.school, lead_teacher=world.teacher, visited_at=timezone.now(), status=Visit.Status.DRAFT
    )
    draft.students.set([world.plain_student])
    client = login(world.inspector)
    url = reverse("school_visit_list", args=[world.school.pk])
    with django_assert_max_num_queries(14) as few:
        assert "周小强" not in _page(client, url)
    for _ in range(30):
        visit = Visit.objects.create(
            school=world.school,
            lead_teacher=world.teacher,
            visited_at=timezone.now(),
            status=Visit.Status.SUBMITTED,
            submitted_at=timezone.now(),
        )
        visit.students.set([world.plain_student])
        visit.companions.set([world.head_teacher])
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert "周小强" in _page(client, url)


# --- the bureau admin's back office ------------------------------------------------------------


def test_the_back_office_shows_a_student_masked_read_only_and_without_sensitive_categories(world, login, record):
    student = record["student"]
    factories.StudentCategoryFactory(student=student, category=Category.LEFT_BEHIND)
    client = login(world.bureau_admin)
    change_url = reverse("admin:students_student_change", args=[student.pk])
    page = _page(client, change_url)
    assert "王小明" in page and MASKED_ID_NUMBER in page and MASKED_GUARDIAN_PHONE in page and "2017年" in page
    assert "留守儿童" in page
    for hidden in (ID_NUMBER, student.student_number, GUARDIAN_PHONE, ADDRESS, "听力残疾", PSYCHOLOGICAL):
        assert hidden not in page, hidden
    listing = _page(client, reverse("admin:students_student_changelist"))
    assert "王小明" in listing and student.student_number not in listing
    categories = _page(client, reverse("admin:students_studentcategory_changelist"))
    assert "留守儿童" in categories and PSYCHOLOGICAL not in categories
    assert client.post(change_url, {"name": "改名"}).status_code == 403
    assert client.get(reverse("admin:students_student_add")).status_code == 403
    assert client.get(reverse("admin:students_student_delete", args=[student.pk])).status_code == 403
    assert Student.objects.get(pk=student.pk).name == "王小明"


def test_no_model_admin_lists_a_full_id_number_or_phone_of_a_student():
    for model, model_admin in admin_site._registry.items():
        if model._meta.app_label != "students":
            continue
        shown = set(model_admin.list_display) | set(model_admin.get_fields(request=None))
        assert not shown & {"id_number", "address", "phone", "disability_type", "student_number"}, model


# --- no copy kept by a browser or a proxy ---------------------------------------------------------


def test_every_page_with_personal_data_is_no_store(world, login, record, stats):
    visit, attachment = record["visit"], record["attachment"]
    urls = [
        reverse("student_detail", args=[record["student"].public_id]),
        reverse("visit_detail", args=[visit.public_id]),
        reverse("visit_print", args=[visit.public_id]),
        reverse("attachment_file", args=[attachment.public_id]),
        reverse("visit_export"),
        reverse("teacher_assessment_xlsx", args=[world.school.pk]),
        reverse("statistics_sheet"),
        reverse("student_list"),
        reverse("class_detail", args=[world.school_class.pk]),
    ]
    client = login(world.school_admin)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Cache-Control"] == "no-store, private", url
        assert response["Pragma"] == "no-cache", url


def test_a_404_to_a_signed_in_user_is_no_store_too(world, login):
    response = login(world.other_teacher).get(reverse("student_detail", args=[world.student.public_id]))
    assert response.status_code == 404 and "no-store" in response["Cache-Control"]


def test_static_files_are_left_to_their_own_caching(world, login):
    static = login(world.teacher).get("/static/css/print.css")
    assert "no-store" not in static.get("Cache-Control", "")
    assert "Pragma" not in static


# --- small numbers (issue 14) --------------------------------------------------------------------


@pytest.mark.parametrize(("role", "shown"), [("school_admin", 2), *[(role, "<3") for role in COUNTY]])
def test_one_or_two_students_of_a_sensitive_category_in_a_class_show_as_fewer_than_three(world, login, role, shown):
    campaign = factories.CampaignFactory()
    if not campaign.phases.exists():
        factories.PhaseFactory(campaign=campaign)
    build = StatsBuilder(campaign)
    build.school(world.school, students_required=2)
    build.school_class(
        world.school_class,
        students_required=5,
        care_students=1,
        categories={"disability": [2, 1], "left_behind": [1, 1], "migrant": [0, 0]},
    )
    build.school_class(world.plain_class, students_required=5, categories={"disability": [3, 1]})
    client = login(world.users()[role])
    response = client.get(reverse("statistics_class", args=[world.school.pk, world.school_class.pk]))
    assert response.status_code == 200
    categories = {c["label"]: c for c in response.context["categories"]}
    disability = categories[str(Category.DISABILITY.label)]
    assert disability["students"] == shown
    assert categories[str(Category.LEFT_BEHIND.label)]["students"] == 1  # not a sensitive category
    assert categories[str(Category.MIGRANT.label)]["students"] == 0
    care = {card["label"]: card["value"] for card in response.context["headline"]}["孤儿和事实无人抚养儿童"]
    assert care == ("1" if role == "school_admin" else "<3")
    if role != "school_admin":
        assert disability["rate"] == "—"
        assert "&lt;3" in response.content.decode()
    three = client.get(reverse("statistics_class", args=[world.school.pk, world.plain_class.pk]))
    assert {c["label"]: c for c in three.context["categories"]}[str(Category.DISABILITY.label)]["students"] == 3


# --- the Django admin (issue 14) ----------------------------------------------------------------


def test_the_back_office_lists_staff_and_school_phones_masked(world, login):
    from schools.models import User

    User.objects.filter(pk=world.teacher.pk).update(username="13900001111", phone="13900001111")
    world.school.contact_phone = "0371-66880011"
    world.school.save()
    client = login(world.bureau_admin)
    users = _page(client, reverse("admin:schools_user_changelist"))
    assert "139****1111" in users and "13900001111" not in users
    found = _page(client, reverse("admin:schools_user_changelist") + "?q=13900001111")
    assert "张老师" in found  # the full number still finds the account
    schools = _page(client, reverse("admin:schools_school_changelist"))
    assert "037*****0011" in schools and "66880011" not in schools


def test_the_back_office_does_not_echo_an_import_jobs_values(world, login):
    from schools.models import ImportJob

    job = ImportJob.objects.create(
        kind="roster",
        school=world.school,
        uploaded_by=world.school_admin,
        file_name="名单.xlsx",
        sha256="0" * 64,
        status=ImportJob.Status.VALIDATED,
        problems=[{"row": 3, "column": "监护人联系电话", "message": "13912345678 不是有效的手机号"}],
        preview={"rows": [["王小明", ID_NUMBER, GUARDIAN_PHONE]]},
    )
    page = _page(login(world.bureau_admin), reverse("admin:schools_importjob_change", args=[job.pk]))
    assert "名单.xlsx" in page and "1 条" in page
    for value in (GUARDIAN_PHONE, ID_NUMBER, "王小明"):
        assert value not in page, value


# --- who looked at a child's record (issue 14) --------------------------------------------------


def test_the_access_history_lists_who_viewed_printed_and_exported_the_record(world, login, record):
    from schools.models import AuditEvent

    student, visit = record["student"], record["visit"]
    _page(login(world.zone_admin), reverse("student_detail", args=[student.public_id]))
    _page(login(world.inspector), reverse("visit_print", args=[visit.public_id]))
    _page(login(world.teacher), reverse("visit_detail", args=[visit.public_id]))
    login(world.school_admin).get(reverse("visit_export"))
    login(world.school_admin).get(reverse("visit_export") + f"?school_class={world.plain_class.pk}")  # not 王小明's
    login(world.other_admin).get(reverse("visit_export"))  # another school

    response = login(world.school_admin).get(reverse("student_access_history", args=[student.public_id]))
    assert response.status_code == 200
    rows = [(event.user.username, event.label) for event in response.context["page"]]
    assert rows == [
        ("school_admin", "查看访问记录"),
        ("school_admin", "导出家访记录"),
        ("teacher", "查看家访记录"),
        ("inspector", "打印家访记录"),
        ("zone_admin", "查看学生信息"),
    ]
    html = response.content.decode()
    assert "周主任" in html and "片区管理员" in html and "127.0.0.1" in html
    seen = AuditEvent.objects.filter(user=world.school_admin, detail__page="access_history").get()
    assert seen.object_id == str(student.public_id)


def test_the_access_history_is_paginated_in_a_fixed_number_of_queries(
    world, login, record, django_assert_max_num_queries
):
    from schools.models import AuditEvent

    student = record["student"]
    client = login(world.bureau_admin)
    url = reverse("student_access_history", args=[student.public_id])
    with django_assert_max_num_queries(12) as few:
        assert client.get(url).status_code == 200
    AuditEvent.objects.bulk_create(
        AuditEvent(
            user=user,
            username=user.username,
            action=AuditEvent.Action.VIEW,
            object_type="students.Student",
            object_id=str(student.public_id),
            ip="10.0.0.1",
        )
        for user in [world.teacher, world.zone_admin, world.inspector, world.head_teacher] * 30
    )
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(url + "?page=2")
    assert response.context["page"].paginator.count == 122 and len(response.context["page"]) == 50
