"""The school's visit list, its XLSX export and the printable record form: filters, scope, masking,
neutralised text, audit rows, and query counts that do not grow with the visits."""

import datetime
import io

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from schools.models import AuditEvent, Phase
from schools.privacy import mask_id_number
from students.models import Student
from tests import factories
from visits.models import Attachment, Content, Method, Suggestion, Visit

ALL_USERS = ["teacher", "head_teacher", "school_admin", "zone_admin", "inspector", "bureau_admin"] + [
    "other_teacher",
    "other_admin",
]


def _at(days_ago: int, hour: int = 10, minute: int = 0) -> datetime.datetime:
    """An aware local time ``days_ago`` days before today."""
    day = timezone.localdate() - datetime.timedelta(days=days_ago)
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour, minute)))


def _visit(
    *, lead, students, companions=(), status=Visit.Status.SUBMITTED, method=Method.IN_HOME, at=None, **fields
) -> Visit:
    at = at or _at(1)
    visit = Visit.objects.create(
        school=lead.school,
        lead_teacher=lead,
        visited_at=at,
        method=method,
        status=status,
        submitted_at=at if status == Visit.Status.SUBMITTED else None,
        contents=fields.pop("contents", [Content.LEARNING, Content.SAFETY]),
        situation=fields.pop("situation", "孩子在家表现良好。"),
        integrity_declared=fields.pop("integrity_declared", True),
        **fields,
    )
    visit.students.set(students)
    visit.companions.set(companions)
    return visit


def _list(client, **params) -> list[Visit]:
    response = client.get(reverse("visit_list"), params)
    assert response.status_code == 200
    return list(response.context["page"])


def _sheet(response) -> openpyxl.worksheet.worksheet.Worksheet:
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active


def _records(sheet) -> list[dict]:
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


@pytest.fixture
def phases(world):
    today = timezone.localdate()
    campaign = factories.CampaignFactory()
    plan = factories.PhaseFactory(
        campaign=campaign,
        kind=Phase.Kind.PLAN,
        start=today - datetime.timedelta(days=60),
        end=today - datetime.timedelta(days=30),
    )
    full = factories.PhaseFactory(campaign=campaign, kind=Phase.Kind.FULL_ROUND)
    return {"plan": plan, "full": full}


@pytest.fixture
def visits(world, phases):
    """Three visits of the school that differ in every filtered attribute, and one of another school.

    - home: the teacher, 王小明 (3年级2班), in-home, full round, submitted, 00:30 two days ago
    - phone: the head teacher with the teacher along, 周小强 (4年级1班, a disability that ended), phone,
      plan phase, draft, forty days ago
    - wechat: the school admin, 吴小丽 (4年级1班, disability in force), WeChat, full round, submitted
    """
    lily = factories.StudentFactory(school_class=world.plain_class, name="吴小丽")
    factories.StudentCategoryFactory(student=lily, category="disability")
    factories.StudentCategoryFactory(
        student=world.plain_student,
        category="disability",
        start=timezone.localdate() - datetime.timedelta(days=100),
        end=timezone.localdate() - datetime.timedelta(days=1),
    )
    return {
        "home": _visit(
            lead=world.teacher, students=[world.student], phase=phases["full"], at=_at(2, hour=0, minute=30)
        ),
        "phone": _visit(
            lead=world.head_teacher,
            companions=[world.teacher],
            students=[world.plain_student],
            method=Method.PHONE,
            status=Visit.Status.DRAFT,
            phase=phases["plan"],
            at=_at(40),
        ),
        "wechat": _visit(
            lead=world.school_admin, students=[lily], method=Method.WECHAT, phase=phases["full"], at=_at(5)
        ),
        "other": _visit(lead=world.other_teacher, students=[world.other_student]),
    }


# --- the list ------------------------------------------------------------------------------------


def test_a_school_admin_sees_every_visit_of_the_school_drafts_marked(world, login, visits):
    client = login(world.school_admin)
    response = client.get(reverse("visit_list"))

    assert {v.pk for v in response.context["page"]} == {visits[k].pk for k in ("home", "phone", "wechat")}
    page = response.content.decode()
    assert "草稿" in page
    assert "陈小红" not in page  # the other school's student
    assert "王小明" in page and "周小强" in page and "吴小丽" in page
    assert reverse("visit_export") in page


def test_a_teacher_sees_only_their_visits_and_their_students(world, login, visits):
    colleague = factories.UserFactory(school=world.school, real_name="钱老师")
    of_my_student = _visit(lead=colleague, students=[world.student])
    _visit(lead=colleague, students=[world.student], status=Visit.Status.DRAFT)  # a colleague's draft
    _visit(lead=colleague, students=[world.plain_student])  # a student the teacher does not teach

    response = login(world.teacher).get(reverse("visit_list"))

    shown = {v.pk for v in response.context["page"]}
    assert shown == {visits["home"].pk, visits["phone"].pk, of_my_student.pk}
    assert "teacher" not in response.context["form"].fields  # the colleague menu is the admin's
    assert reverse("visit_export") not in response.content.decode()


def test_the_head_teacher_sees_submitted_visits_of_the_class_but_not_others_drafts(world, login, visits):
    shown = {v.pk for v in _list(login(world.head_teacher))}

    assert shown == {visits["home"].pk, visits["phone"].pk}  # the class's visit, and the one they led


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"home", "phone", "wechat"}),
        ({"school_class": "own"}, {"home"}),
        ({"school_class": "plain"}, {"phone", "wechat"}),
        ({"teacher": "teacher"}, {"home", "phone"}),  # lead or companion
        ({"teacher": "head_teacher"}, {"phone"}),
        ({"method": Method.IN_HOME}, {"home"}),
        ({"method": Method.QQ}, set()),
        ({"phase": "plan"}, {"phone"}),
        ({"phase": "full"}, {"home", "wechat"}),
        ({"category": "disability"}, {"wechat"}),  # 周小强's disability has ended
        ({"category": "left_behind"}, set()),
        ({"status": Visit.Status.DRAFT}, {"phone"}),
        ({"status": Visit.Status.SUBMITTED}, {"home", "wechat"}),
        ({"date_from": 10}, {"home", "wechat"}),
        ({"date_to": 3}, {"phone", "wechat"}),
        ({"date_from": 10, "date_to": 3}, {"wechat"}),
        ({"date_from": 2}, {"home"}),  # 00:30 local time is still that day, although UTC says the day before
        ({"school_class": "plain", "status": Visit.Status.SUBMITTED}, {"wechat"}),
        ({"teacher": "teacher", "method": Method.PHONE, "phase": "plan"}, {"phone"}),
    ],
)
def test_each_filter_narrows_the_list(world, login, visits, phases, params, expected):
    today = timezone.localdate()
    resolved = {}
    for name, value in params.items():
        if name == "school_class":
            value = (world.school_class if value == "own" else world.plain_class).pk
        elif name == "teacher":
            value = world.users()[value].pk
        elif name == "phase":
            value = phases[value].pk
        elif name.startswith("date_"):
            value = (today - datetime.timedelta(days=value)).isoformat()
        resolved[name] = value

    shown = {v.pk for v in _list(login(world.school_admin), **resolved)}

    assert shown == {visits[key].pk for key in expected}


def test_a_class_of_another_school_is_refused_with_a_message_and_no_rows(world, login, visits):
    response = login(world.school_admin).get(reverse("visit_list"), {"school_class": world.other_class.pk})

    assert response.status_code == 200
    assert list(response.context["page"]) == []
    assert "筛选条件有误" in response.content.decode()


def test_a_start_date_after_the_end_date_is_refused(world, login, visits):
    response = login(world.school_admin).get(
        reverse("visit_list"), {"date_from": "2026-06-02", "date_to": "2026-06-01"}
    )

    assert list(response.context["page"]) == []
    assert "开始日期不能晚于结束日期" in response.content.decode()


def test_the_list_shows_every_column(world, login, visits):
    visit = visits["phone"]
    Attachment.objects.create(visit=visit, original_name="a.jpg", content_type="image/jpeg", size=10)
    Attachment.objects.create(visit=visit, original_name="b.jpg", content_type="image/jpeg", size=10)

    response = login(world.school_admin).get(reverse("visit_list"), {"status": "draft"})

    row = response.context["page"][0]
    assert row.attachment_count == 2
    assert row.class_names == ["四年级（1）班"]
    page = response.content.decode()
    for text in ("电话访", "周小强", "四年级（1）班", "李班主任", "张老师", "计划", "草稿"):
        assert text in page
    assert reverse("visit_print", args=[visit.public_id]) in page


def test_the_list_is_paginated_by_fifty_and_keeps_the_filters(world, login):
    for _ in range(51):
        _visit(lead=world.teacher, students=[world.student])

    client = login(world.school_admin)
    first = client.get(reverse("visit_list"), {"method": Method.IN_HOME})
    second = client.get(reverse("visit_list"), {"method": Method.IN_HOME, "page": 2})

    assert len(first.context["page"]) == 50
    assert len(second.context["page"]) == 1
    assert "method=in_home&amp;page=2" in first.content.decode()


def test_the_list_query_count_does_not_grow_with_visits(world, login, phases, django_assert_max_num_queries):
    admin, teacher = login(world.school_admin), login(world.teacher)
    lily = factories.StudentFactory(school_class=world.plain_class, name="吴小丽")
    params = {"phase": phases["full"].pk, "teacher": world.teacher.pk, "school_class": world.school_class.pk}

    def add(n):
        for _ in range(n):
            visit = _visit(
                lead=world.teacher,
                students=[world.student, lily],
                companions=[world.head_teacher],
                phase=phases["full"],
            )
            Attachment.objects.create(visit=visit, original_name="a.jpg", content_type="image/jpeg", size=10)
            Suggestion.objects.create(visit=visit, text="希望多沟通", reply="好的")

    add(3)
    with django_assert_max_num_queries(ADMIN_LIST_QUERIES) as admin_small:
        assert len(admin.get(reverse("visit_list"), params).context["page"]) == 3
    with django_assert_max_num_queries(TEACHER_LIST_QUERIES) as teacher_small:
        assert len(teacher.get(reverse("visit_list")).context["page"]) == 3
    add(37)
    with django_assert_max_num_queries(len(admin_small.captured_queries)):
        assert len(admin.get(reverse("visit_list"), params).context["page"]) == 40
    with django_assert_max_num_queries(len(teacher_small.captured_queries)):
        assert len(teacher.get(reverse("visit_list")).context["page"]) == 40


# session, user; school year, campaign; validating the class, teacher and phase filters; count,
# page, companions, students; the user's school (menu bar); the class, teacher and phase menus
ADMIN_LIST_QUERIES = 15
# the same without filters to validate and without the teacher menu
TEACHER_LIST_QUERIES = 11


# --- scope ---------------------------------------------------------------------------------------


def _submitted(world) -> Visit:
    return _visit(lead=world.teacher, students=[world.student])


def _draft(world) -> Visit:
    return _visit(lead=world.teacher, students=[world.student], status=Visit.Status.DRAFT)


SCHOOL_STAFF = {"teacher", "head_teacher", "school_admin", "other_teacher", "other_admin"}
SCHOOL_ADMINS = {"school_admin", "other_admin"}
SEES_THE_SUBMITTED_VISIT = {"teacher", "head_teacher", "school_admin", "zone_admin", "inspector", "bureau_admin"}
SEES_THE_DRAFT = {"teacher", "school_admin"}

MATRIX = [
    ("visit list", lambda w: reverse("visit_list"), SCHOOL_STAFF),
    ("visit export", lambda w: reverse("visit_export"), SCHOOL_ADMINS),
    (
        "print of a submitted visit",
        lambda w: reverse("visit_print", args=[_submitted(w).public_id]),
        SEES_THE_SUBMITTED_VISIT,
    ),
    ("print of a draft", lambda w: reverse("visit_print", args=[_draft(w).public_id]), SEES_THE_DRAFT),
]


@pytest.mark.parametrize("user_key", ALL_USERS)
@pytest.mark.parametrize(("description", "url_for", "allowed"), MATRIX, ids=[row[0] for row in MATRIX])
def test_each_role_gets_the_page_or_404(world, login, user_key, description, url_for, allowed):
    url = url_for(world)
    denied_before = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()

    response = login(world.users()[user_key]).get(url)

    expected = 200 if user_key in allowed else 404
    assert response.status_code == expected, f"{user_key} on {description}"
    denied_after = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()
    assert denied_after == denied_before + (expected == 404)
    if expected == 404:
        assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED, user=world.users()[user_key]).exists()


def test_anonymous_visitors_are_sent_to_login(world, client):
    visit = _submitted(world)
    for url in (reverse("visit_list"), reverse("visit_export"), reverse("visit_print", args=[visit.public_id])):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_another_schools_admin_exports_nothing_of_this_school(world, login, visits):
    sheet = _sheet(login(world.other_admin).get(reverse("visit_export")))

    assert [row["学生"] for row in _records(sheet)] == ["陈小红"]


def test_a_forged_print_url_of_an_unknown_record_is_404_and_logged(world, login):
    import uuid

    response = login(world.school_admin).get(reverse("visit_print", args=[uuid.uuid4()]))

    assert response.status_code == 404
    assert AuditEvent.objects.get(action=AuditEvent.Action.DENIED).object_type == "visits.Visit"


# --- the export ----------------------------------------------------------------------------------


def test_the_export_has_one_row_per_visit_and_student(world, login, visits, phases):
    sibling = factories.StudentFactory(
        school_class=world.plain_class, name="王小芳", student_number="G110105201501011234"
    )
    visit = _visit(
        lead=world.teacher,
        companions=[world.head_teacher, world.school_admin],
        students=[world.student, sibling],
        phase=phases["full"],
        at=_at(1, hour=15, minute=20),
        guardians_met="王芳（母亲）",
        contents=[Content.SAFETY, Content.LEARNING, Content.BULLYING],
        situation='=HYPERLINK("http://evil.example","点我")',
        measures="每周电话沟通一次",
        consent_recorded=True,
    )
    Suggestion.objects.create(visit=visit, text="希望增加课后服务", reply="已记录，学校会统筹")
    Suggestion.objects.create(visit=visit, text="校门口交通拥堵", to_school=True)

    response = login(world.school_admin).get(reverse("visit_export"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in response["Content-Disposition"]
    sheet = _sheet(response)
    header = [cell.value for cell in sheet[1]]
    assert header == [
        "学校",
        "班级",
        "学生",
        "学籍号",
        "家访时间",
        "方式",
        "是否入户",
        "阶段",
        "家访教师",
        "同行人员",
        "接待家长",
        "家访内容",
        "情况记录",
        "商定措施",
        "家长意见建议",
        "知情同意",
        "廉洁承诺",
        "状态",
        "提交时间",
    ]
    assert sheet.freeze_panes == "A2"
    records = _records(sheet)
    assert len(records) == 5  # home, phone, wechat: one student each; the new visit: two
    rows = [r for r in records if r["情况记录"] and "HYPERLINK" in r["情况记录"]]
    assert sorted(r["学生"] for r in rows) == ["王小明", "王小芳"]
    row = next(r for r in rows if r["学生"] == "王小芳")
    assert row == {
        "学校": "城关第一小学",
        "班级": "四年级（1）班",
        "学生": "王小芳",
        "学籍号": mask_id_number("G110105201501011234"),
        "家访时间": datetime.datetime.combine(timezone.localdate() - datetime.timedelta(days=1), datetime.time(15, 20)),
        "方式": "上门家访",
        "是否入户": "是",
        "阶段": "第一轮全员家访",
        "家访教师": "张老师",
        "同行人员": "孙校长、李班主任",
        "接待家长": "王芳（母亲）",
        "家访内容": "学情反馈、防欺凌宣传、安全教育",
        "情况记录": '\'=HYPERLINK("http://evil.example","点我")',
        "商定措施": "每周电话沟通一次",
        "家长意见建议": "希望增加课后服务（答复：已记录，学校会统筹）；校门口交通拥堵（提交学校处理）",
        "知情同意": "是",
        "廉洁承诺": "是",
        "状态": "已提交",
        "提交时间": datetime.datetime.combine(timezone.localdate() - datetime.timedelta(days=1), datetime.time(15, 20)),
    }
    assert row["学籍号"] != "G110105201501011234" and "*" in row["学籍号"]
    for record in records:
        student = Student.objects.get(name=record["学生"])
        assert record["学籍号"] == mask_id_number(student.student_number)
        assert student.student_number not in {str(v) for v in record.values()}
    draft = next(r for r in records if r["学生"] == "周小强")
    assert (draft["状态"], draft["提交时间"], draft["方式"], draft["是否入户"]) == ("草稿", None, "电话访", "否")
    for line in sheet.iter_rows():
        for cell in line:
            assert cell.data_type != "f"


def test_the_export_takes_the_list_filters_and_lists_only_the_classes_students(world, login, visits, phases):
    sibling = factories.StudentFactory(school_class=world.plain_class, name="王小芳")
    _visit(lead=world.teacher, students=[world.student, sibling], phase=phases["full"])

    client = login(world.school_admin)
    own_class = _records(_sheet(client.get(reverse("visit_export"), {"school_class": world.school_class.pk})))
    drafts = _records(_sheet(client.get(reverse("visit_export"), {"status": "draft"})))
    plan = _records(_sheet(client.get(reverse("visit_export"), {"phase": phases["plan"].pk})))

    assert sorted(r["学生"] for r in own_class) == ["王小明", "王小明"]  # not the sibling of another class
    assert [r["学生"] for r in drafts] == ["周小强"]
    assert [r["学生"] for r in plan] == ["周小强"]


def test_the_export_is_audited_with_its_filters_and_row_count(world, login, visits, phases):
    client = login(world.school_admin)
    client.get(reverse("visit_export"), {"phase": phases["full"].pk, "method": "", "status": "submitted"})

    event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
    assert event.user == world.school_admin
    assert event.object_type == "visits.Visit"
    assert event.detail["rows"] == 2
    assert event.detail["filters"] == {"phase": phases["full"].pk, "status": "submitted"}
    assert event.path == reverse("visit_export")


def test_an_export_with_an_invalid_filter_goes_back_to_the_list(world, login, visits):
    response = login(world.school_admin).get(reverse("visit_export"), {"school_class": world.other_class.pk})

    assert response.status_code == 302
    assert response.url.startswith(reverse("visit_list"))
    assert f"school_class={world.other_class.pk}" in response.url
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).exists()


def test_the_export_query_count_does_not_grow_with_visits(world, login, phases, django_assert_max_num_queries):
    client = login(world.school_admin)
    lily = factories.StudentFactory(school_class=world.plain_class, name="吴小丽")

    def add(n):
        for _ in range(n):
            visit = _visit(
                lead=world.teacher,
                students=[world.student, lily],
                companions=[world.head_teacher],
                phase=phases["full"],
            )
            Suggestion.objects.create(visit=visit, text="希望多沟通", reply="好的")

    add(3)
    with django_assert_max_num_queries(EXPORT_QUERIES) as small:
        assert len(_records(_sheet(client.get(reverse("visit_export"), {"phase": phases["full"].pk})))) == 6
    add(37)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(_records(_sheet(client.get(reverse("visit_export"), {"phase": phases["full"].pk})))) == 80


# session, user; school year, campaign; validating the phase; the user's school (file name); the
# rows, their companions and suggestions (one batch); the audit row
EXPORT_QUERIES = 10


# --- the printable record ------------------------------------------------------------------------


def test_the_print_page_is_the_paper_form_without_identifiers(world, login, phases):
    factories.GuardianFactory(student=world.student, phone="13912345678")
    world.student.id_number = "11010519491231002X"
    world.student.save()
    visit = _visit(
        lead=world.teacher,
        companions=[world.head_teacher],
        students=[world.student],
        phase=phases["full"],
        guardians_met="王芳（母亲）",
        contents=[Content.LEARNING, Content.LAW],
        situation="孩子喜欢画画。\n作业按时完成。",
        measures="每周沟通一次",
        consent_recorded=True,
    )
    Suggestion.objects.create(visit=visit, text="希望增加课后服务", reply="已记录")
    Suggestion.objects.create(visit=visit, text="校门口交通拥堵", to_school=True)

    response = login(world.school_admin).get(reverse("visit_print", args=[visit.public_id]))

    page = response.content.decode()
    assert "“万名教师大家访”大家访活动教师记录表" in page
    for text in (
        "城关第一小学",
        "家访时间",
        "上门家访（入户）",
        "张老师",
        "李班主任",
        "王小明（三年级（2）班）",
        "王芳（母亲）",
        "孩子喜欢画画。<br>作业按时完成。",
        "每周沟通一次",
        "希望增加课后服务",
        "提交学校处理",
        "未接受家长吃请和礼品",
        "教师签名",
        "商定措施",
    ):
        assert text in page, text
    assert page.count("☑") == 4  # two contents, consent, integrity
    assert page.count("☐") == len(Content.choices) - 2
    for label in Content.labels:
        assert str(label) in page
    for secret in (world.student.student_number, "11010519491231002X", "13912345678", "138****", "139****5678"):
        assert secret not in page
    assert "css/print" in page and "js/print" in page
    assert "data-print" in page


def test_the_print_page_has_no_inline_script_or_handlers(world, login):
    visit = _submitted(world)
    page = login(world.teacher).get(reverse("visit_print", args=[visit.public_id])).content.decode()

    assert "<script>" not in page
    assert " onclick=" not in page and " onload=" not in page
    for tag in page.split("<script")[1:]:
        assert tag.lstrip().startswith("src=")


def test_opening_the_print_page_writes_a_view_audit_row(world, login):
    visit = _submitted(world)

    login(world.inspector).get(reverse("visit_print", args=[visit.public_id]))

    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW)
    assert (event.user, event.object_type, event.object_id) == (world.inspector, "visits.Visit", str(visit.public_id))


def test_the_print_page_takes_a_fixed_number_of_queries(world, login, django_assert_max_num_queries):
    visit = _visit(lead=world.teacher, students=[world.student, world.plain_student], companions=[world.head_teacher])
    Suggestion.objects.create(visit=visit, text="希望多沟通", reply="好的")

    # session, user, the visit, companions, students, suggestions, the audit row, the menu's school
    client = login(world.school_admin)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("visit_print", args=[visit.public_id])).status_code == 200


def test_a_draft_prints_marked_as_draft(world, login):
    page = login(world.teacher).get(reverse("visit_print", args=[_draft(world).public_id])).content.decode()

    assert "草稿（未提交）" in page


def test_the_print_stylesheet_sets_a4_and_hides_the_navigation():
    from django.conf import settings

    css = (settings.BASE_DIR / "static" / "css" / "print.css").read_text()
    assert "size: A4" in css
    assert "margin: 15mm" in css
    assert ".navbar" in css
    js = (settings.BASE_DIR / "static" / "js" / "print.js").read_text()
    assert "[data-print]" in js and "window.print()" in js
