"""Random back-checks (抽查回访), quality flags (质量提示) and inspections with rectification
(督查记录、整改): issue 12, DESIGN §2 and §6."""

import datetime
import io

import openpyxl
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from oversight.flags import BURST_RECORDS, Code, school_flags
from oversight.models import BackCheck, BackCheckSample, Inspection
from oversight.services import (
    inspection_file,
    rectification_decide,
    rectification_report,
    sample_draw,
    sample_pick,
    sample_population,
)
from schools.models import AuditEvent
from tests import factories
from tests.test_dashboards import stats  # noqa: F401 - the fixture
from visits.models import Attachment, Method, Visit

NOW = timezone.now()


def visit_at(world, visited_at, *, created_at=None, method=Method.PHONE, situation="", teacher=None, student=None):
    """A submitted visit; ``created_at`` (when it was typed in) defaults to an hour after the visit."""
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=teacher or world.teacher,
        visited_at=visited_at,
        method=method,
        status=Visit.Status.SUBMITTED,
        submitted_at=visited_at,
        situation=situation or f"情况记录 {visited_at:%m%d%H%M%S}",
        integrity_declared=True,
    )
    entered = created_at or visited_at + datetime.timedelta(hours=1)
    Visit.objects.filter(pk=visit.pk).update(created_at=entered, submitted_at=entered)
    visit.students.set([student or world.student])
    return visit


def spread(world, count: int, *, days_ago: int = 20, method=Method.PHONE) -> list[Visit]:
    """``count`` unremarkable visits, one a day, entered an hour after."""
    start = timezone.now() - datetime.timedelta(days=days_ago)
    return [visit_at(world, start + datetime.timedelta(days=i), method=method) for i in range(count)]


# --- quality flags -----------------------------------------------------------------------------------


def test_each_quality_flag_catches_its_records_and_explains_itself(world):
    base = timezone.localtime().replace(hour=8, minute=0, second=0, microsecond=0) - datetime.timedelta(days=30)
    plain = visit_at(world, base)
    late = visit_at(world, base + datetime.timedelta(days=1), created_at=base + datetime.timedelta(days=12))
    busy_day = [
        visit_at(world, base + datetime.timedelta(days=2, hours=2 * i), method=Method.IN_HOME) for i in range(5)
    ]
    overlap = [visit_at(world, base + datetime.timedelta(days=3, minutes=m), method=Method.NEARBY) for m in (0, 20)]
    copied = "孩子在家表现良好，家长非常支持学校工作，双方约定加强沟通。"
    same = [
        visit_at(world, base + datetime.timedelta(days=4 + i), situation=copied, student=s)
        for i, s in enumerate([world.student, world.plain_student, world.student])
    ]
    typed_at = base + datetime.timedelta(days=10)
    burst = [
        visit_at(
            world, base + datetime.timedelta(days=5, hours=i), created_at=typed_at + datetime.timedelta(minutes=2 * i)
        )
        for i in range(BURST_RECORDS)
    ]
    with_photo = visit_at(world, base + datetime.timedelta(days=6), method=Method.IN_HOME)
    Attachment.objects.create(visit=with_photo, original_name="a.jpg", content_type="image/jpeg", size=1)

    flags = school_flags(world.school)
    codes = {pk: {f.code for f in items} for pk, items in flags.items()}

    assert plain.pk not in flags and with_photo.pk not in flags
    assert codes[late.pk] == {Code.LATE_ENTRY}
    assert "晚 11 天" in flags[late.pk][0].explanation
    assert all(codes[v.pk] == {Code.MANY_IN_DAY, Code.NO_PHOTO} for v in busy_day)
    assert all(codes[v.pk] == {Code.OVERLAP} for v in overlap)
    assert all(codes[v.pk] == {Code.SAME_NOTES} for v in same)
    assert "另外 2 条" in flags[same[0].pk][0].explanation
    assert all(codes[v.pk] == {Code.BURST} for v in burst)


def test_the_flags_take_the_same_queries_for_ten_visits_or_a_hundred(world, django_assert_num_queries):
    copied = "孩子在家表现良好，家长非常支持学校工作，双方约定加强沟通。"
    for i in range(3):
        visit_at(world, timezone.now() - datetime.timedelta(days=40 + i), situation=copied, method=Method.IN_HOME)
    spread(world, 7)
    with django_assert_num_queries(4):
        small = school_flags(world.school)
    spread(world, 90, days_ago=200, method=Method.IN_HOME)
    with django_assert_num_queries(4):
        large = school_flags(world.school)
    assert len(large) > len(small)


def test_the_flag_page_lists_the_schools_flagged_records_in_fixed_queries(world, login, django_assert_max_num_queries):
    spread(world, 3, method=Method.IN_HOME)
    copied = "孩子在家表现良好，家长非常支持学校工作，双方约定加强沟通。"
    for i in range(3):  # the notes query runs too
        visit_at(world, timezone.now() - datetime.timedelta(days=300 + i), situation=copied)
    client = login(world.inspector)
    url = reverse("quality_flags", args=[world.school.pk])
    with django_assert_max_num_queries(QUALITY_QUERIES) as small:
        page = client.get(url).content.decode()
    assert "上门家访没有上传照片" in page
    spread(world, 80, days_ago=150, method=Method.IN_HOME)
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = client.get(url + "?flag=no_photo&page=2").content.decode()
    assert "第 2 / 2 页" in page


# --- back-checks --------------------------------------------------------------------------------------


def test_a_sample_is_reproducible_from_its_stored_seed(world):
    spread(world, 10)
    sample = sample_draw(school=world.school, size=3, acting_user=world.inspector)
    drawn = sorted(sample.checks.values_list("visit_id", flat=True))

    population = sample_population(school=world.school, phase=None, method="", flagged_only=False)
    assert sample_pick(population, size=3, seed=sample.seed) == drawn
    again = sample_draw(school=world.school, size=3, seed=sample.seed, acting_user=world.school_admin)
    assert sorted(again.checks.values_list("visit_id", flat=True)) == drawn
    assert (sample.population, sample.size) == (10, 3)
    share = sample_draw(school=world.school, share=25, acting_user=world.inspector)
    assert share.size == 3, "25% of 10 rounds up to 3"
    assert AuditEvent.objects.filter(object_id=str(sample.public_id), detail__seed=sample.seed).exists()


def test_a_sample_draws_only_from_the_filters_and_the_flagged_records(world):
    spread(world, 6, method=Method.PHONE)
    in_home = spread(world, 4, days_ago=60, method=Method.IN_HOME)  # no photos: flagged
    by_method = sample_draw(school=world.school, method=Method.IN_HOME, size=10, acting_user=world.inspector)
    flagged = sample_draw(school=world.school, flagged_only=True, size=10, acting_user=world.inspector)
    assert set(by_method.checks.values_list("visit_id", flat=True)) == {v.pk for v in in_home}
    assert set(flagged.checks.values_list("visit_id", flat=True)) == {v.pk for v in in_home}


def test_an_inspector_draws_only_from_their_assigned_schools(world):
    other = Visit.objects.create(
        school=world.other_school,
        lead_teacher=world.other_teacher,
        visited_at=timezone.now(),
        method=Method.PHONE,
        status=Visit.Status.SUBMITTED,
    )
    other.students.set([world.other_student])
    for user in (world.inspector, world.school_admin, world.zone_admin):
        with pytest.raises(ValidationError):
            sample_draw(school=world.other_school, size=1, acting_user=user)
    with pytest.raises(ValidationError, match="没有符合条件"):
        sample_draw(school=world.school, size=1, acting_user=world.inspector)
    assert not BackCheckSample.objects.exists()


def test_outcomes_give_the_true_rate_and_an_untrue_visit_is_flagged_on_the_record_and_the_assessment(
    world,
    login,
    stats,  # noqa: F811
):
    spread(world, 10)
    client = login(world.inspector)
    response = client.post(reverse("sample_list"), {"school": world.school.pk, "size": 4})
    sample = BackCheckSample.objects.get()
    assert response.url == reverse("sample_detail", args=[sample.public_id])
    checks = list(sample.checks.order_by("pk"))
    untrue = checks[2]
    client.post(reverse("back_check_save", args=[untrue.public_id]), {"outcome": "untrue", "note": ""})
    assert BackCheck.objects.get(pk=untrue.pk).outcome == "", "untrue needs a note"
    for check, outcome, note in zip(
        checks, ["true", "true", "untrue", "unreachable"], ["", "", "家长说当天没有老师来", "电话停机"], strict=True
    ):
        client.post(reverse("back_check_save", args=[check.public_id]), {"outcome": outcome, "note": note})
    assert sorted(BackCheck.objects.values_list("outcome", flat=True)) == ["true", "true", "unreachable", "untrue"]

    dashboard = client.get(reverse("statistics_school", args=[world.school.pk])).content.decode()
    assert 'data-testid="true-rate">66.7%<' in dashboard, "2 true of 3 reached; 联系不上 left out"
    record = login(world.school_admin).get(reverse("visit_detail", args=[untrue.visit.public_id])).content.decode()
    assert 'data-testid="untrue-flag"' in record and "家长说当天没有老师来" in record
    assessment = login(world.school_admin).get(reverse("teacher_assessment", args=[world.school.pk])).content.decode()
    assert '<td>张老师</td><td>0</td><td><span class="text-danger">1</span></td>' in assessment


def test_the_sample_pages_take_fixed_queries(world, login, django_assert_max_num_queries):
    spread(world, 120)
    client = login(world.inspector)
    sample_draw(school=world.school, size=2, acting_user=world.inspector)
    with django_assert_max_num_queries(SAMPLE_LIST_QUERIES) as list_small:
        client.get(reverse("sample_list"))
    small = BackCheckSample.objects.get()
    with django_assert_max_num_queries(SAMPLE_DETAIL_QUERIES) as detail_small:
        client.get(reverse("sample_detail", args=[small.public_id]))
    for _ in range(3):
        sample_draw(school=world.school, size=60, acting_user=world.inspector)
    large = BackCheckSample.objects.order_by("-pk").first()
    with django_assert_max_num_queries(len(list_small.captured_queries)):
        client.get(reverse("sample_list"))
    with django_assert_max_num_queries(len(detail_small.captured_queries)):
        page = client.get(reverse("sample_detail", args=[large.public_id])).content.decode()
    assert page.count('name="outcome"') == 50


# --- inspections and rectification ---------------------------------------------------------------


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), "green").save(out, format="PNG")
    return out.getvalue()


def _file(world, **overrides) -> Inspection:
    fields = {
        "school": world.school,
        "date": timezone.localdate(),
        "how": Inspection.How.ON_SITE,
        "findings": "三年级家访记录不全。",
        "rectification": "一周内补全。",
        "deadline": timezone.localdate() + datetime.timedelta(days=7),
        "acting_user": world.inspector,
    }
    return inspection_file(**(fields | overrides))


def test_an_inspection_is_filed_only_for_an_assigned_school_and_a_rectification_needs_a_deadline(world):
    with pytest.raises(ValidationError):
        _file(world, school=world.other_school)
    with pytest.raises(ValidationError) as error:
        _file(world, deadline=None)
    assert "整改期限" in str(error.value)
    with pytest.raises(ValidationError):
        _file(world, acting_user=world.school_admin)
    assert _file(world, rectification="").status == Inspection.Status.NO_RECTIFICATION
    assert _file(world).status == Inspection.Status.OPEN


def test_the_school_reports_with_a_photo_and_the_inspector_sends_back_then_accepts(world, login):
    inspection = _file(world)
    admin = login(world.school_admin)
    upload = io.BytesIO(png())
    upload.name = "整改照片.png"
    admin.post(
        reverse("rectification_report", args=[inspection.public_id]), {"text": "已补全记录。", "files": [upload]}
    )
    inspection.refresh_from_db()
    assert inspection.status == Inspection.Status.REPORTED
    step = inspection.steps.get()
    item = step.files.get()
    assert item.path.read_bytes().startswith(b"\x89PNG")
    inspector = login(world.inspector)
    assert inspector.get(reverse("rectification_file", args=[item.public_id])).status_code == 200

    with pytest.raises(ValidationError):
        rectification_decide(inspection=inspection, accept=False, text="", acting_user=world.inspector)
    inspector.post(
        reverse("rectification_decide", args=[inspection.public_id]), {"decision": "send_back", "text": "四年级未补"}
    )
    inspection.refresh_from_db()
    assert inspection.status == Inspection.Status.SENT_BACK
    rectification_report(inspection=inspection, text="四年级已补全。", acting_user=world.school_admin)
    inspector.post(reverse("rectification_decide", args=[inspection.public_id]), {"decision": "accept"})
    inspection.refresh_from_db()
    assert inspection.status == Inspection.Status.ACCEPTED
    page = admin.get(reverse("inspection_detail", args=[inspection.public_id])).content.decode()
    assert page.index("已补全记录") < page.index("四年级未补") < page.index("四年级已补全")


def test_an_overdue_rectification_is_flagged_on_the_school_and_bureau_pages(world, login, stats):  # noqa: F811
    inspection = _file(world)
    with time_machine.travel(timezone.now() + datetime.timedelta(days=9)):
        assert inspection.is_overdue()
        for user in (world.school_admin, world.bureau_admin):
            listing = login(user).get(reverse("inspection_list")).content.decode()
            assert 'data-testid="overdue-rectifications">有 1 项' in listing.replace("\n", "")
        county = login(world.bureau_admin).get(reverse("statistics_county")).content.decode()
        assert 'data-testid="overdue-rectifications"' in county
        school = login(world.school_admin).get(reverse("statistics_school", args=[world.school.pk])).content.decode()
        assert 'data-testid="overdue-rectifications"' in school


def test_an_inspector_sees_their_own_inspections_first(world, login):
    other_inspector = factories.UserFactory(role="inspector", school=None, username="insp2")
    factories.InspectorAssignmentFactory(inspector=other_inspector, school=world.other_school)
    mine = _file(world, date=timezone.localdate() - datetime.timedelta(days=5))
    _file(world, school=world.other_school, acting_user=other_inspector)
    rows = list(login(world.inspector).get(reverse("inspection_list")).context["page"].object_list)
    assert rows[0] == mine and len(rows) == 2
    assert [i.school for i in login(world.other_admin).get(reverse("inspection_list")).context["page"]] == [
        world.other_school
    ]


def test_the_inspection_ledger_exports_in_the_ledger_layout(world, login):
    _file(world, findings='=HYPERLINK("x")')
    _file(world, findings="家长电话 139 1234 5678 未接到家访", rectification="")
    response = login(world.bureau_admin).get(reverse("inspection_export"))
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert "督查记录台账" in rows[0][0]
    assert rows[1][0].startswith("填报单位：") and rows[1][2].startswith("填报人：吴科长")
    assert rows[2][:3] == ["序号", "学校", "督查日期"]
    assert [r[0] for r in rows[3:5]] == [1, 2]
    assert rows[-1][0] == "审核人："
    assert any(str(cell).startswith("'=") for cell in rows[3] + rows[4])
    findings = [str(cell) for cell in rows[3] + rows[4] if "家长电话" in str(cell)]
    assert findings == ["家长电话 139****5678 未接到家访"]  # typed numbers masked as in every export
    assert sheet.page_setup.orientation == "landscape" and str(sheet.page_setup.paperSize) == "9"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, object_type="oversight.Inspection").exists()


def test_the_inspection_list_takes_fixed_queries(world, login, django_assert_max_num_queries):
    _file(world)
    client = login(world.inspector)
    with django_assert_max_num_queries(INSPECTION_LIST_QUERIES) as small:
        client.get(reverse("inspection_list"))
    for _ in range(60):
        _file(world)
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(reverse("inspection_list") + "?page=2")


def test_the_review_queue_takes_fixed_queries(world, login, django_assert_max_num_queries):
    from oversight.models import ReviewSetting
    from oversight.services import review_setting_set

    review_setting_set(school=world.school, mode=ReviewSetting.Mode.ADMIN, acting_user=world.school_admin)
    spread(world, 2)
    client = login(world.school_admin)
    with django_assert_max_num_queries(REVIEW_QUEUE_QUERIES) as small:
        client.get(reverse("review_queue"))
    spread(world, 70, days_ago=100)
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = client.get(reverse("review_queue")).content.decode()
    assert page.count("查看并审核") == 50


# session, user, then the page's own reads (pinned: they must not grow with rows)
QUALITY_QUERIES = 12  # + school, 4 for the flags, the page's visits and their students
SAMPLE_LIST_QUERIES = 11  # + schools in charge, phases, the page of samples, the form's choices
SAMPLE_DETAIL_QUERIES = 10  # + sample, its checks with visits, students, classes, audit row
INSPECTION_LIST_QUERIES = 7  # + count, the page, the overdue count
REVIEW_QUEUE_QUERIES = 10  # + setting, count, the page, students, classes, returned count
