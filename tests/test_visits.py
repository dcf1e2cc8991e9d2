"""Teachers file visit records: drafts, submission, corrections with history, photos, conflicts."""

import datetime
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from ledgers.models import WHOLE_CAMPAIGN, Level, UnitStatistics
from schools.models import AuditEvent, Phase, School
from students.models import Student
from tests import factories
from visits.models import Attachment, Revision, Visit
from visits.services import VisitData, visit_submit


@pytest.fixture
def phase(world):
    """A full-round phase around today, so visits filed today belong to it."""
    return factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)


def form_data(world, **overrides) -> dict:
    data = {
        "visited_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "method": "in_home",
        "students": [str(world.student.pk)],
        "guardians_met": "母亲 王芳",
        "contents": ["learning", "safety"],
        "situation": "孩子在家按时完成作业，家长关心学习。",
        "measures": "每周电话沟通一次。",
        "consent_recorded": "on",
        "integrity_declared": "on",
        "suggestions-TOTAL_FORMS": "2",
        "suggestions-INITIAL_FORMS": "0",
        "suggestions-MIN_NUM_FORMS": "0",
        "suggestions-MAX_NUM_FORMS": "10",
        "suggestions-0-text": "希望学校加强课后服务",
        "suggestions-0-reply": "",
        "suggestions-0-to_school": "on",
        "action": "submit",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), "orange")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = {1: "N", 2: (30.0, 15.0, 0.0), 3: "E", 4: (120.0, 10.0, 0.0)}
    exif[0x8825] = gps
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_a_teacher_submits_a_visit_and_the_student_shows_as_visited(world, login, phase):
    client = login(world.teacher)
    page = client.get("/").content.decode()
    assert 'data-status="not_visited"' in page
    response = client.post(reverse("visit_create"), form_data(world))
    visit = Visit.objects.get()
    assert response.url == reverse("visit_detail", args=[visit.public_id])
    assert visit.is_submitted and visit.phase == phase and visit.lead_teacher == world.teacher
    assert list(visit.students.all()) == [world.student]
    assert visit.suggestions.get().to_school
    page = client.get("/").content.decode()
    assert 'data-status="visited"' in page
    detail = client.get(response.url).content.decode()
    assert "希望学校加强课后服务" in detail and "已提交学校处理" in detail


def test_a_draft_can_be_saved_incomplete_and_submitted_later(world, login, phase):
    client = login(world.teacher)
    client.post(
        reverse("visit_create"),
        form_data(world, action="draft", situation="", contents=[], integrity_declared=None),
    )
    visit = Visit.objects.get()
    assert visit.status == Visit.Status.DRAFT
    assert 'data-status="not_visited"' in client.get("/").content.decode()
    response = client.post(reverse("visit_edit", args=[visit.public_id]), form_data(world, version=visit.version))
    visit.refresh_from_db()
    assert response.status_code == 302 and visit.is_submitted


@pytest.mark.parametrize(
    ("overrides", "field_message"),
    [
        ({"integrity_declared": None}, "提交前请确认廉洁承诺"),
        ({"situation": ""}, "提交前请填写情况记录"),
        ({"contents": []}, "请至少勾选一项家访内容"),
        ({"students": []}, "这个字段是必填项"),
        ({"method": "carrier_pigeon"}, "选择一个有效的选项"),
        ({"visited_at": "2099-01-01T10:00"}, "家访时间不能晚于现在"),
        ({"visited_at": "昨天下午"}, "输入一个有效的日期/时间"),
        ({"situation": "很" * 4001}, "4000"),
    ],
)
def test_bad_input_gets_a_chinese_message_and_nothing_is_saved(world, login, phase, overrides, field_message):
    response = login(world.teacher).post(reverse("visit_create"), form_data(world, **overrides))
    assert response.status_code == 200
    assert field_message in response.content.decode()
    assert not Visit.objects.exists()


def test_a_special_students_in_home_visit_needs_the_guardians_consent(world, login, phase):
    factories.StudentCategoryFactory(student=world.student, category="left_behind")
    response = login(world.teacher).post(reverse("visit_create"), form_data(world, consent_recorded=None))
    assert "王小明属于特殊学生群体，上门家访须记录家长知情同意" in response.content.decode()
    assert not Visit.objects.exists()
    # A phone visit does not enter the home: no consent needed.
    response = login(world.teacher).post(
        reverse("visit_create"), form_data(world, consent_recorded=None, method="phone")
    )
    assert response.status_code == 302


@pytest.mark.parametrize("who", ["other_student", "plain_student"])
def test_a_student_outside_the_teachers_scope_smuggled_into_the_post_is_refused(world, login, phase, who):
    student = getattr(world, who)
    response = login(world.teacher).post(
        reverse("visit_create"), form_data(world, students=[str(world.student.pk), str(student.pk)])
    )
    assert response.status_code == 200
    assert "选择一个有效的选项" in response.content.decode()
    assert not Visit.objects.exists()


def test_a_companion_from_another_school_is_refused(world, login, phase):
    response = login(world.teacher).post(
        reverse("visit_create"), form_data(world, companions=[str(world.other_teacher.pk)])
    )
    assert "选择一个有效的选项" in response.content.decode()
    assert not Visit.objects.exists()


def test_the_service_refuses_another_schools_student_even_without_the_form(world, phase):
    data = VisitData(
        visited_at=timezone.now(),
        method="phone",
        students=[world.other_student],
        contents=["learning"],
        situation="x",
        integrity_declared=True,
    )
    with pytest.raises(Exception, match="不在您的学生范围内"):
        visit_submit(visit=None, data=data, acting_user=world.teacher)
    assert not Visit.objects.exists()


def test_siblings_are_filed_in_one_record_with_a_companion(world, login, phase):
    sibling = factories.StudentFactory(school_class=world.school_class, name="王小亮")
    client = login(world.teacher)
    client.post(
        reverse("visit_create"),
        form_data(world, students=[str(world.student.pk), str(sibling.pk)], companions=[str(world.head_teacher.pk)]),
    )
    visit = Visit.objects.get()
    assert set(visit.students.all()) == {world.student, sibling}
    assert list(visit.companions.all()) == [world.head_teacher]
    # The companion sees the record too, but may not change it.
    head = login(world.head_teacher)
    assert head.get(reverse("visit_detail", args=[visit.public_id])).status_code == 200
    assert head.get(reverse("visit_edit", args=[visit.public_id])).status_code == 404


def test_a_photo_is_stored_privately_without_its_gps_location(world, login, phase, settings):
    upload = SimpleUploadedFile("IMG_0001.jpg", jpeg_with_gps(), content_type="image/jpeg")
    login(world.teacher).post(reverse("visit_create"), {**form_data(world), "photos": [upload]})
    attachment = Attachment.objects.get()
    assert str(settings.PRIVATE_FILES_ROOT) in str(attachment.path)
    stored = Image.open(attachment.path)
    assert stored.format == "JPEG"
    assert not stored.getexif()  # no Make, no GPS
    response = login(world.school_admin).get(reverse("attachment_file", args=[attachment.public_id]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "no-store" in response["Cache-Control"]
    assert login(world.other_admin).get(reverse("attachment_file", args=[attachment.public_id])).status_code == 404


def test_heic_png_and_pdf_are_accepted(world, login, phase):
    from pillow_heif import from_pillow

    heic = io.BytesIO()
    from_pillow(Image.new("RGB", (32, 32), "blue")).save(heic, quality=50)
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "green").save(png, format="PNG")
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    uploads = [
        SimpleUploadedFile("IMG_0002.HEIC", heic.getvalue()),
        SimpleUploadedFile("a.png", png.getvalue()),
        SimpleUploadedFile("scan.pdf", pdf),
    ]
    login(world.teacher).post(reverse("visit_create"), {**form_data(world), "photos": uploads})
    assert sorted(Attachment.objects.values_list("content_type", flat=True)) == [
        "application/pdf",
        "image/jpeg",
        "image/png",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("photo.jpg", b"MZ\x90\x00 this is an exe renamed", "不是照片或 PDF 文件"),
        (
            "photo.gif",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
            b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
            "GIF 格式",
        ),
        ("scan.pdf", b"%PDF-1.4 truncated", "不是完整的 PDF"),
    ],
)
def test_a_forged_or_unsupported_file_is_refused_and_the_form_keeps_what_was_typed(
    world, login, phase, name, content, message
):
    upload = SimpleUploadedFile(name, content)
    response = login(world.teacher).post(reverse("visit_create"), {**form_data(world), "photos": [upload]})
    page = response.content.decode()
    assert response.status_code == 200
    assert message in page and "其他内容已保留" in page
    assert "孩子在家按时完成作业" in page  # what was typed is still in the form
    assert not Visit.objects.exists() and not Attachment.objects.exists()


def test_a_file_over_ten_megabytes_is_refused(world, login, phase, settings):
    settings.VISIT_ATTACHMENT_MAX_BYTES = 1024
    upload = SimpleUploadedFile("big.jpg", jpeg_with_gps() + b"\0" * 2048)
    response = login(world.teacher).post(reverse("visit_create"), {**form_data(world), "photos": [upload]})
    assert "超过 0 MB 的上限" in response.content.decode() or "MB 的上限" in response.content.decode()
    assert not Visit.objects.exists()


def test_no_more_than_nine_attachments(world, login, phase):
    uploads = [SimpleUploadedFile(f"{n}.jpg", jpeg_with_gps()) for n in range(10)]
    response = login(world.teacher).post(reverse("visit_create"), {**form_data(world), "photos": uploads})
    assert "最多 9 个附件" in response.content.decode()
    assert not Visit.objects.exists()


def test_a_correction_after_submission_is_kept_in_the_history(world, login, phase):
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    visit = Visit.objects.get()
    client.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, version=visit.version, situation="家长反映孩子近期情绪低落。", method="nearby"),
    )
    revision = Revision.objects.get(visit=visit)
    assert revision.changed_by == world.teacher
    assert revision.changes["情况记录"] == ["孩子在家按时完成作业，家长关心学习。", "家长反映孩子近期情绪低落。"]
    assert revision.changes["家访方式"] == ["上门家访", "就近家访"]
    page = client.get(reverse("visit_detail", args=[visit.public_id])).content.decode()
    assert "修改记录" in page and "家长反映孩子近期情绪低落" in page and "张老师" in page


def test_the_second_of_two_concurrent_edits_is_refused_and_shown_the_other_version(world, login, phase):
    login(world.teacher).post(reverse("visit_create"), form_data(world))
    visit = Visit.objects.get()
    opened_version = visit.version
    # The school admin saves first, from a form opened at the same version.
    login(world.school_admin).post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, version=opened_version, measures="由学校心理老师跟进。"),
    )
    response = login(world.teacher).post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, version=opened_version, measures="老师自己跟进。"),
    )
    page = response.content.decode()
    assert "这条记录刚被其他人修改过" in page and "由学校心理老师跟进" in page
    visit.refresh_from_db()
    assert visit.measures == "由学校心理老师跟进。"


def test_a_submitted_visit_asks_for_a_statistics_refresh_after_commit(world, phase, django_capture_on_commit_callbacks):
    data = VisitData(
        visited_at=timezone.now(),
        method="phone",
        students=[world.student],
        contents=["learning"],
        situation="电话沟通",
        integrity_declared=True,
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        visit_submit(visit=None, data=data, acting_user=world.teacher)
    assert len(callbacks) == 1
    assert School.objects.get(pk=world.school.pk).statistics_stale_since is not None  # durable before any broker
    assert not UnitStatistics.objects.exists()

    callbacks[0]()  # the commit: the refresh runs (in-process here, after the window on a worker)

    row = UnitStatistics.objects.get(level=Level.SCHOOL, unit_id=world.school.pk, period=WHOLE_CAMPAIGN)
    assert (row.students_visited, row.teachers_participating, row.visits) == (1, 1, 1)
    assert School.objects.get(pk=world.school.pk).statistics_stale_since is None


def test_a_rolled_back_save_queues_no_refresh(world, phase, django_capture_on_commit_callbacks):
    data = VisitData(
        visited_at=timezone.now(),
        method="phone",
        students=[world.student],
        contents=["learning"],
        situation="电话沟通",
        integrity_declared=True,
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                visit_submit(visit=None, data=data, acting_user=world.teacher)
                raise RuntimeError("the request failed after the save")
        except RuntimeError:
            pass
    assert callbacks == []
    assert not Visit.objects.exists()
    assert School.objects.get(pk=world.school.pk).statistics_stale_since is None


def test_a_special_student_with_one_in_home_visit_needs_a_revisit(world, login, phase):
    factories.StudentCategoryFactory(student=world.student, category="psychological")
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    assert 'data-status="needs_revisit"' in client.get("/").content.decode()
    yesterday = timezone.localtime() - datetime.timedelta(days=1)
    client.post(reverse("visit_create"), form_data(world, visited_at=yesterday.strftime("%Y-%m-%dT%H:%M")))
    assert 'data-status="visited"' in client.get("/").content.decode()


def test_my_students_filters_by_status_category_and_name(world, login, phase):
    other = factories.StudentFactory(school_class=world.school_class, name="李小花")
    factories.StudentCategoryFactory(student=other, category="migrant")
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    page = client.get("/?status=not_visited").content.decode()
    assert "李小花" in page and "王小明" not in page
    page = client.get("/?category=migrant").content.decode()
    assert "李小花" in page and "王小明" not in page
    page = client.get("/?q=小明").content.decode()
    assert "王小明" in page and "李小花" not in page


def test_my_students_for_sixty_students_takes_the_same_queries_whatever_the_visits(
    world, login, phase, django_assert_max_num_queries
):
    students = [world.student] + [factories.StudentFactory(school_class=world.school_class) for _ in range(59)]
    for student in students[::3]:
        factories.StudentCategoryFactory(student=student, category="left_behind")
    client = login(world.teacher)
    with django_assert_max_num_queries(15) as before:
        client.get("/")
    for student in students:
        for days in range(3):
            visit = Visit.objects.create(
                school=world.school,
                lead_teacher=world.teacher,
                visited_at=timezone.now() - datetime.timedelta(days=days),
                method="in_home",
                status=Visit.Status.SUBMITTED,
                phase=phase,
            )
            visit.students.set([student])
    with django_assert_max_num_queries(len(before.captured_queries)):
        page = client.get("/").content.decode()
    assert page.count('data-status="visited"') == 60


def test_a_student_page_shows_the_visit_history_and_is_audited(world, login, phase):
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    page = client.get(reverse("student_detail", args=[world.student.public_id])).content.decode()
    assert "上门家访" in page and "本学年 1 次，其中入户 1 次" in page
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, object_type="students.Student").exists()


def test_the_visit_form_opened_from_a_student_is_prefilled(world, login, phase):
    page = login(world.teacher).get(reverse("visit_create") + f"?student={world.student.public_id}")
    boxes = [box for box in page.context["form"]["students"] if box.data["selected"]]
    assert [box.data["value"].value for box in boxes] == [world.student.pk]


# --- scope ----------------------------------------------------------------------------------

ALL = [
    "teacher",
    "head_teacher",
    "school_admin",
    "zone_admin",
    "inspector",
    "bureau_admin",
    "other_teacher",
    "other_admin",
]


def _submitted_visit(world) -> Visit:
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=timezone.now(),
        method="phone",
        status=Visit.Status.SUBMITTED,
    )
    visit.students.set([world.student])
    return visit


def _draft_visit(world) -> Visit:
    visit = _submitted_visit(world)
    visit.status = Visit.Status.DRAFT
    visit.save()
    return visit


def _attachment(world) -> Attachment:
    attachment = Attachment.objects.create(
        visit=_submitted_visit(world), original_name="a.jpg", content_type="image/jpeg", size=3
    )
    attachment.path.parent.mkdir(parents=True, exist_ok=True)
    attachment.path.write_bytes(b"abc")
    return attachment


SCOPE = [
    ("new visit form", lambda w: reverse("visit_create"), {"teacher", "head_teacher", "other_teacher"}),
    (
        "new visit form for a student",
        lambda w: reverse("visit_create") + f"?student={w.student.public_id}",
        {"teacher", "head_teacher"},
    ),
    (
        "submitted visit",
        lambda w: reverse("visit_detail", args=[_submitted_visit(w).public_id]),
        {"teacher", "head_teacher", "school_admin", "zone_admin", "inspector", "bureau_admin"},
    ),
    ("draft visit", lambda w: reverse("visit_detail", args=[_draft_visit(w).public_id]), {"teacher", "school_admin"}),
    (
        "visit edit",
        lambda w: reverse("visit_edit", args=[_submitted_visit(w).public_id]),
        {"teacher", "school_admin"},
    ),
    (
        # Photos of a home: the student's teachers and the school admin only (DESIGN §8).
        "attachment",
        lambda w: reverse("attachment_file", args=[_attachment(w).public_id]),
        {"teacher", "head_teacher", "school_admin"},
    ),
]


@pytest.mark.parametrize("user_key", ALL)
@pytest.mark.parametrize(("description", "url_for", "allowed"), SCOPE, ids=[row[0] for row in SCOPE])
def test_each_role_reaches_the_visit_pages_or_gets_404(world, login, user_key, description, url_for, allowed):
    url = url_for(world)
    response = login(world.users()[user_key]).get(url)
    assert response.status_code == (200 if user_key in allowed else 404), f"{user_key} on {description}"
    if response.status_code == 404:
        assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).exists()


@pytest.mark.parametrize("user_key", ["head_teacher", "zone_admin", "inspector", "bureau_admin", "other_admin"])
def test_only_the_author_or_the_school_admin_may_delete_an_attachment(world, login, user_key):
    attachment = _attachment(world)
    response = login(world.users()[user_key]).post(reverse("attachment_remove", args=[attachment.public_id]))
    assert response.status_code == 404
    assert Attachment.objects.filter(pk=attachment.pk).exists()


def test_the_author_deletes_an_attachment_and_its_file(world, login, django_capture_on_commit_callbacks):
    attachment = _attachment(world)
    with django_capture_on_commit_callbacks(execute=True):
        response = login(world.teacher).post(reverse("attachment_remove", args=[attachment.public_id]))
    assert response.status_code == 302
    assert not Attachment.objects.exists() and not attachment.path.exists()


def test_a_teacher_cannot_open_a_visit_form_for_another_schools_student(world, login):
    url = reverse("visit_create") + f"?student={world.other_student.public_id}"
    assert login(world.teacher).get(url).status_code == 404
    assert Student.objects.filter(pk=world.other_student.pk).exists()
