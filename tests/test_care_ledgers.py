"""The special-student ledgers (issue 10; DESIGN §3, §6, §8): the school calendar, support plans
(一生一策) with their history and prompts, the care log (每日一问 / 每周一见) with its missed days and
compliance, the pages' scope and masking, the 台账 exports opened with openpyxl, and the reminders
with their group-robot digests posted to a real local HTTP server."""

import base64
import datetime
import hashlib
import hmac
import io
import json
import threading
import urllib.parse
import zoneinfo
from http.server import BaseHTTPRequestHandler, HTTPServer

import openpyxl
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from ledgers.calendar import calendar_override_add, school_calendar
from ledgers.care import care_ask_record, care_compliance_by_school, care_log, care_meeting_record
from ledgers.care_models import CalendarOverride, CareAsk, SupportPlan, SupportPlanRevision
from ledgers.reminders import care_asks_remind, care_weekly_remind, group_robot_save, support_prompts_remind
from ledgers.support import support_ledger, support_plan_save
from schools.models import AuditEvent, Phase
from tests import factories
from visits.models import GroupRobot, Method, Notification, Visit, WebhookMessage
from visits.notify import ROBOT_TEXT_MAX_BYTES, dingtalk_signed_url, fit_bytes
from visits.tasks import ATTEMPTS_MAX, notify_webhook_send

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
# A Wednesday after the National Day holiday; 10 October 2026 (a Saturday) was a make-up workday.
NOW = datetime.datetime(2026, 10, 14, 12, 0, tzinfo=SHANGHAI)
TODAY = NOW.date()
# School days from 1 September to 13 October 2026 with the default autumn term, counted by hand:
# 22 weekdays in September less 25 September (中秋) plus Sunday 20 September (调休) = 22;
# 9 weekdays in October to the 13th less 1, 2, 5, 6, 7 October (国庆) plus Saturday 10 October = 5.
SCHOOL_DAYS_TO_13_OCTOBER = 27


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def care(world, frozen):
    """王小明 (the head teacher's class) is an orphan since before term; 周小强 (another class) left-behind."""
    start = datetime.date(2026, 8, 1)
    factories.StudentCategoryFactory(student=world.student, category="orphan", start=start)
    factories.StudentCategoryFactory(student=world.plain_student, category="left_behind", start=start)
    return world


def _plan_values(**overrides) -> dict:
    values = {
        "consent_by": "王芳（母亲）",
        "consent_on": datetime.date(2026, 9, 10),
        "consent_method": SupportPlan.ConsentMethod.SIGNED,
        "study_measures": "每周课后辅导两次。",
        "study_who": "李班主任",
        "next_review_on": datetime.date(2026, 12, 1),
        "status": SupportPlan.Status.ACTIVE,
        "close_reason": "",
    }
    values.update(overrides)
    return values


# --- the school calendar ---------------------------------------------------------------------------


def test_school_days_are_term_weekdays_less_public_holidays_plus_make_up_workdays(world, frozen):
    calendar = school_calendar(world.school)
    days = calendar.school_days(datetime.date(2026, 9, 1), datetime.date(2026, 10, 13))
    assert len(days) == SCHOOL_DAYS_TO_13_OCTOBER
    assert datetime.date(2026, 9, 20) in days and datetime.date(2026, 10, 10) in days  # 调休 weekend workdays
    assert datetime.date(2026, 9, 25) not in days and datetime.date(2026, 10, 1) not in days
    assert not calendar.is_school_day(datetime.date(2026, 8, 31))  # before the default term
    assert not calendar.unknown_years


def test_the_bureau_and_the_school_override_terms_holidays_and_closures(world, frozen):
    calendar_override_add(
        school=None,
        kind=CalendarOverride.Kind.TERM,
        start=datetime.date(2026, 8, 31),
        end=datetime.date(2027, 1, 22),
        name="秋季学期",
        acting_user=world.bureau_admin,
    )
    calendar_override_add(
        school=world.school,
        kind=CalendarOverride.Kind.CLOSURE,
        start=datetime.date(2026, 9, 14),
        end=datetime.date(2026, 9, 15),
        name="县运动会停课",
        acting_user=world.school_admin,
    )
    calendar_override_add(
        school=world.school,
        kind=CalendarOverride.Kind.WORKDAY,
        start=datetime.date(2026, 9, 26),
        end=datetime.date(2026, 9, 26),
        name="补课",
        acting_user=world.school_admin,
    )
    calendar = school_calendar(world.school)
    assert calendar.is_school_day(datetime.date(2026, 8, 31))  # the county's term starts a day earlier
    assert not calendar.is_school_day(datetime.date(2026, 9, 14))
    assert calendar.is_school_day(datetime.date(2026, 9, 26))
    assert len(calendar.school_days(datetime.date(2026, 8, 31), datetime.date(2026, 10, 13))) == (
        SCHOOL_DAYS_TO_13_OCTOBER + 1 - 2 + 1
    )
    other = school_calendar(world.other_school)  # the closure is the school's own
    assert other.is_school_day(datetime.date(2026, 9, 14)) and not other.is_school_day(datetime.date(2026, 9, 26))
    with pytest.raises(ValidationError):
        calendar_override_add(
            school=world.other_school,
            kind=CalendarOverride.Kind.HOLIDAY,
            start=TODAY,
            end=TODAY,
            name="越权",
            acting_user=world.school_admin,
        )
    assert AuditEvent.objects.filter(object_type="ledgers.CalendarOverride").count() == 3


def test_a_year_the_holiday_table_does_not_know_falls_back_to_weekdays_and_the_page_says_so(world, login, frozen):
    calendar = school_calendar(world.school)
    assert calendar.is_school_day(datetime.date(2027, 1, 4))  # a Monday of 2027, beyond the package's table
    assert 2027 in calendar.unknown_years
    page = login(world.school_admin).get(reverse("school_calendar", args=[world.school.pk]), {"month": "2027-01"})
    assert page.status_code == 200
    assert "尚未收录 2027 年" in page.content.decode()


# --- support plans -----------------------------------------------------------------------------------


def test_a_plan_keeps_every_change_after_the_first_save_with_who_and_when(care):
    plan = support_plan_save(
        student=care.plain_student, plan=None, values=_plan_values(), acting_user=care.school_admin
    )
    assert plan.categories == ["left_behind"] and plan.school_year.start == datetime.date(2026, 8, 1)
    assert not SupportPlanRevision.objects.exists()
    support_plan_save(
        student=care.plain_student,
        plan=plan,
        values=_plan_values(mind_measures="每月谈心一次。"),
        acting_user=care.school_admin,
        reviewed=True,
    )
    revision = SupportPlanRevision.objects.get()
    assert revision.changed_by == care.school_admin
    assert revision.changes["思想上激励·措施"] == ["", "每月谈心一次。"]
    assert revision.changes["上次复核日期"] == ["", "2026-10-14"]
    assert AuditEvent.objects.filter(object_type="ledgers.SupportPlan", action=AuditEvent.Action.CHANGE).count() == 2


def test_bad_plan_input_is_refused_field_by_field_and_changes_nothing(care):
    with pytest.raises(ValidationError) as raised:
        support_plan_save(
            student=care.plain_student,
            plan=None,
            values=_plan_values(study_measures="", consent_method="", status=SupportPlan.Status.CLOSED),
            acting_user=care.school_admin,
        )
    errors = raised.value.message_dict
    assert "至少在一个方面" in errors["economic_measures"][0]
    assert "谁、何时、以何种方式" in errors["consent_by"][0]
    assert "结束原因" in errors["close_reason"][0]
    assert not SupportPlan.objects.exists()


def test_only_the_school_admin_names_a_responsible_teacher_other_than_the_head_teacher(care):
    student = factories.StudentFactory(school_class=care.school_class, name="刘小东")
    factories.StudentCategoryFactory(student=student, category="disability", start=datetime.date(2026, 8, 1))
    with pytest.raises(ValidationError) as raised:
        support_plan_save(
            student=student,
            plan=None,
            values=_plan_values(responsible_teacher=care.teacher),
            acting_user=care.head_teacher,
        )
    assert "只有学校管理员" in raised.value.message_dict["responsible_teacher"][0]
    plan = support_plan_save(
        student=student, plan=None, values=_plan_values(responsible_teacher=care.teacher), acting_user=care.school_admin
    )
    assert SupportPlan.objects.visible_to(care.teacher).get() == plan  # the responsible teacher now sees it
    assert SupportPlan.objects.visible_to(care.head_teacher).get() == plan
    assert not SupportPlan.objects.visible_to(care.other_admin).exists()


def test_a_student_who_becomes_special_is_prompted_once_and_shown_pending_until_a_plan_exists(care):
    support_prompts_remind()
    prompted = Notification.objects.filter(title__contains="建档")
    # 周小强's class has no head teacher: the school admin is told; the student shows as 待建档.
    assert set(prompted.values_list("user__username", flat=True)) == {"school_admin"}
    assert "周小强" in prompted.get().body
    ledger = support_ledger(care.school, user=care.school_admin)
    assert [(r.student.name, r.needs_plan) for r in ledger.rows] == [("周小强", True)]
    support_prompts_remind()
    assert prompted.count() == 1  # not twice


def test_a_category_that_ends_asks_for_a_review_not_a_silent_close(care):
    plan = support_plan_save(
        student=care.plain_student, plan=None, values=_plan_values(), acting_user=care.school_admin
    )
    category = care.plain_student.categories.get()
    category.end = TODAY - datetime.timedelta(days=1)
    category.save()
    batch = support_prompts_remind()
    plan.refresh_from_db()
    assert plan.status == SupportPlan.Status.ACTIVE and plan.review_requested_on == TODAY
    assert batch[care.school.pk]["review"] == 1
    assert Notification.objects.filter(user=care.school_admin, body__contains="待复核").exists()


def test_the_plan_page_counts_in_home_visits_against_two_and_shows_agreed_measures(care, login):
    plan = support_plan_save(
        student=care.plain_student, plan=None, values=_plan_values(), acting_user=care.school_admin
    )
    for method, measures in ((Method.IN_HOME, "每周电话一次。"), (Method.PHONE, "")):
        visit = Visit.objects.create(
            school=care.school,
            lead_teacher=care.school_admin,
            visited_at=NOW - datetime.timedelta(days=3),
            method=method,
            status=Visit.Status.SUBMITTED,
            measures=measures,
            situation="家访",
        )
        visit.students.set([care.plain_student])
    factories.PhaseFactory(kind=Phase.Kind.REVISIT, start=datetime.date(2026, 10, 1), end=datetime.date(2026, 11, 30))
    page = login(care.school_admin).get(reverse("support_plan_detail", args=[plan.public_id])).content.decode()
    assert 'data-testid="in-home">1/2' in page
    assert "还需入户家访 1 次" in page and "2026年11月30日" in page
    assert "每周电话一次。" in page  # on the timeline
    event = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, object_type="ledgers.SupportPlan").get()
    assert event.user == care.school_admin and event.object_id == str(plan.public_id)


def test_the_county_reads_plans_with_categories_generalised_masked_numbers_and_no_measures(care, login):
    plan = support_plan_save(
        student=care.plain_student, plan=None, values=_plan_values(), acting_user=care.school_admin
    )
    page = login(care.zone_admin).get(reverse("support_plan_detail", args=[plan.public_id])).content.decode()
    assert "特殊学生" in page and "留守儿童" not in page
    assert care.plain_student.student_number not in page
    assert "每周课后辅导两次" not in page and "王芳" not in page
    overview = login(care.inspector).get(reverse("support_overview", args=[care.school.pk])).content.decode()
    assert "周小强" in overview and "留守儿童" not in overview and care.plain_student.student_number not in overview


def test_the_overview_counts_per_class_and_keeps_its_query_count_whatever_the_rows(
    care, login, django_assert_max_num_queries
):
    client = login(care.school_admin)
    url = reverse("support_overview", args=[care.school.pk])
    with django_assert_max_num_queries(11):
        client.get(url)
    for n in range(12):
        student = factories.StudentFactory(school_class=care.school_class if n % 2 else care.plain_class)
        factories.StudentCategoryFactory(student=student, category="psychological", start=datetime.date(2026, 9, 1))
        if n % 3 == 0:
            support_plan_save(student=student, plan=None, values=_plan_values(), acting_user=care.school_admin)
    with django_assert_max_num_queries(11):
        response = client.get(url, {"status": "no_plan"})
    ledger = response.context["ledger"]
    assert ledger.totals.special == 13 and ledger.totals.no_plan == 9 and ledger.totals.below_two == 13
    assert response.context["page"].paginator.count == 9
    by_class = {c.school_class.pk: (c.special, c.no_plan) for c in ledger.classes}
    assert by_class == {care.school_class.pk: (6, 4), care.plain_class.pk: (7, 5)}


# --- the care log ----------------------------------------------------------------------------------------


def test_missed_asks_and_meetings_are_computed_from_the_calendar_per_child_class_and_school(care):
    # Every school day asked except 8 and 9 October; a meeting every ended week except the one of 7 September.
    for day in school_calendar(care.school).school_days(datetime.date(2026, 9, 1), datetime.date(2026, 10, 13)):
        if day not in (datetime.date(2026, 10, 8), datetime.date(2026, 10, 9)):
            CareAsk.objects.create(student=care.student, school=care.school, day=day, outcome=CareAsk.Outcome.FACE)
    monday = datetime.date(2026, 8, 31)
    while monday < datetime.date(2026, 10, 12):
        if monday not in (datetime.date(2026, 9, 7), datetime.date(2026, 10, 5)):
            with time_machine.travel(datetime.datetime.combine(monday, datetime.time(12), SHANGHAI), tick=False):
                care_meeting_record(student=care.student, met_on=monday, acting_user=care.school_admin)
        monday += datetime.timedelta(days=7)
    log = care_log(care.school)
    (child,) = log.children
    assert len(child.days_due) == SCHOOL_DAYS_TO_13_OCTOBER
    assert child.missed_days == [datetime.date(2026, 10, 8), datetime.date(2026, 10, 9)]
    # The weeks of 5 October had school days (8, 9, 10 October) and no meeting; 7 September's neither.
    assert child.missed_weeks == [datetime.date(2026, 9, 7), datetime.date(2026, 10, 5)]
    assert (log.compliance.asks_done, log.compliance.asks_due) == (25, 27)
    assert (log.compliance.meetings_done, log.compliance.meetings_due) == (4, 6)
    assert str(log.compliance.ask_rate) == "92.6" and str(log.compliance.meeting_rate) == "66.7"
    assert log.last_school_day == datetime.date(2026, 10, 13) and log.missed_last_day == []
    (group,) = log.classes
    assert group.school_class == care.school_class and group.compliance.asks_missed == 2
    assert care_compliance_by_school([care.school.pk, care.other_school.pk])[care.school.pk].asks_done == 25


def test_the_head_teacher_records_todays_ask_in_one_tap_from_the_home_page(care, login):
    client = login(care.head_teacher)
    home = client.get("/").content.decode()
    assert 'data-testid="care-today"' in home and "王小明" in home and "待记录 1" in home
    response = client.post(
        reverse("care_ask", args=[care.student.public_id]), {"outcome": "face", "next": "/"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert "已问·当面" in response.content.decode()
    ask = CareAsk.objects.get()
    assert (ask.day, ask.outcome, ask.recorded_by) == (TODAY, CareAsk.Outcome.FACE, care.head_teacher)


def test_an_absent_child_needs_a_reason_and_a_future_day_is_refused(care):
    with pytest.raises(ValidationError) as raised:
        care_ask_record(student=care.student, day=TODAY, outcome="absent", acting_user=care.head_teacher)
    assert "原因" in raised.value.message_dict["reason"][0]
    with pytest.raises(ValidationError):
        care_ask_record(
            student=care.student, day=TODAY + datetime.timedelta(days=1), outcome="face", acting_user=care.head_teacher
        )
    with pytest.raises(ValidationError):
        care_ask_record(
            student=care.student, day=TODAY, outcome="face", acting_user=care.teacher
        )  # not the head teacher
    assert not CareAsk.objects.exists()


def test_the_admin_sees_who_was_not_asked_after_on_the_last_school_day_and_by_whom(care, login):
    page = login(care.school_admin).get(reverse("care_overview", args=[care.school.pk])).content.decode()
    section = page[page.index('data-testid="missed-last-day"') :]
    assert "王小明" in section[:600] and "李班主任" in section[:600]
    assert "2026-10-13" in page
    assert AuditEvent.objects.filter(object_type="ledgers.CareLog", action=AuditEvent.Action.VIEW).exists()
    county = login(care.zone_admin).get(reverse("care_child", args=[care.student.public_id])).content.decode()
    assert "关爱对象" in county and "孤儿" not in county and care.student.student_number not in county


def test_the_home_page_answers_the_three_questions_with_one_click_each(care, login):
    page = login(care.school_admin).get(reverse("school_detail", args=[care.school.pk])).content.decode()
    summary = page[page.index('data-testid="ledgers-summary"') :]
    assert reverse("support_overview", args=[care.school.pk]) + "?status=below_two" in summary
    assert reverse("support_overview", args=[care.school.pk]) + "?status=no_plan" in summary
    assert reverse("care_overview", args=[care.school.pk]) + "#last-day" in summary


# --- exports ---------------------------------------------------------------------------------------------------


def _workbook(response) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def test_the_support_ledger_exports_in_the_ledger_layout_masked_unless_the_admin_asks_for_the_full_one(care, login):
    support_plan_save(student=care.plain_student, plan=None, values=_plan_values(), acting_user=care.school_admin)
    url = reverse("support_export", args=[care.school.pk])
    sheet = _workbook(login(care.school_admin).get(url)).active
    assert "特殊学生帮扶台账" in sheet["A1"].value
    assert sheet["A2"].value == "填报单位：城关第一小学" and sheet["C2"].value == "填报人：孙校长"
    assert sheet["E2"].value.startswith("电话：") and sheet["G2"].value == "日期：2026年10月14日"
    assert sheet["A3"].value == "序号" and sheet["B3"].value == "班级"
    assert [sheet["A4"].value, sheet["C4"].value, sheet["E4"].value] == [1, "周小强", "特殊学生"]
    assert care.plain_student.student_number not in [c.value for c in sheet[4]]
    assert sheet.cell(row=4, column=11).value == "（已填写）"
    assert sheet.cell(row=sheet.max_row, column=1).value == "审核人："
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    full = _workbook(login(care.school_admin).get(url, {"full": "1"})).active
    assert full["D4"].value == care.plain_student.student_number and full["E4"].value == "留守儿童（含单亲子女）"
    assert "每周课后辅导两次" in full.cell(row=4, column=11).value
    county = _workbook(login(care.zone_admin).get(url, {"full": "1"})).active  # not an admin: masked anyway
    assert county["D4"].value != care.plain_student.student_number
    exports = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, object_type="ledgers.SupportLedger")
    assert [e.detail["full"] for e in exports.order_by("pk")] == [False, True, False]


def test_the_monthly_care_sheet_has_a_column_per_school_day_and_marks_missed_days(care, login):
    CareAsk.objects.create(student=care.student, school=care.school, day=datetime.date(2026, 10, 8), outcome="face")
    CareAsk.objects.create(
        student=care.student, school=care.school, day=datetime.date(2026, 10, 9), outcome="leave", reason="病假"
    )
    response = login(care.school_admin).get(reverse("care_month_export", args=[care.school.pk]), {"month": "2026-10"})
    sheet = _workbook(response).active
    header = [c.value for c in sheet[3]]
    day_columns = header[6:-4]
    # October's school days: 8, 9, 10 (调休), then every weekday from the 12th to the 30th.
    assert day_columns[:4] == ["10/8", "10/9", "10/10", "10/12"] and len(day_columns) == 18
    row = dict(zip(header, sheet[4], strict=True))
    assert row["姓名"].value == "王小明" and row["类别"].value == "关爱对象"
    assert row["10/8"].value == "√" and row["10/9"].value == "假"
    assert row["10/12"].value == "✗" and row["10/12"].fill.start_color.rgb.endswith("FFC7CE")
    assert row["10/14"].value is None  # today: not due yet
    assert (row["应问天数"].value, row["已记录"].value, row["漏记"].value) == (5, 2, 3)  # 8, 9, 10, 12, 13 October


# --- reminders and robots ---------------------------------------------------------------------------------------


class _Robot(BaseHTTPRequestHandler):
    answer = {"errcode": 0, "errmsg": "ok"}
    received: list = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        payload = json.dumps(type(self).answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def robot_server():
    _Robot.received = []
    _Robot.answer = {"errcode": 0, "errmsg": "ok"}
    server = HTTPServer(("127.0.0.1", 0), _Robot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _robot_url(server, path="/robot/send?access_token=abc") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_the_evening_reminder_tells_the_head_teacher_and_admin_and_posts_one_digest_without_names(
    care, robot_server, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_WEBHOOK_URL = _robot_url(robot_server, "/county")
    second = factories.StudentFactory(school_class=care.school_class, name="赵小芳")
    factories.StudentCategoryFactory(student=second, category="unsupported", start=datetime.date(2026, 9, 1))
    with django_capture_on_commit_callbacks(execute=True):
        assert care_asks_remind() == {care.school.pk: 2}
    head = Notification.objects.get(user=care.head_teacher)
    assert "王小明" in head.body and "赵小芳" in head.body
    assert Notification.objects.filter(user=care.school_admin).count() == 1
    ((path, body),) = _Robot.received
    content = body["text"]["content"]
    assert path == "/county" and "2 人未记录" in content and "三年级（2）班" in content
    for secret in ("王小明", "赵小芳", "孤儿", "事实无人抚养", "关爱对象"):
        assert secret not in content
    with django_capture_on_commit_callbacks(execute=True):
        assert care_asks_remind() == {}  # the same evening again: nothing twice
    assert len(_Robot.received) == 1


def test_a_school_robot_takes_its_digest_and_dingtalk_requests_are_signed(
    care, robot_server, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_WEBHOOK_URL = _robot_url(robot_server, "/county")
    group_robot_save(
        school=care.school,
        values={
            "kind": "dingtalk",
            "url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "secret": "SECabc",
            "enabled": True,
        },
        acting_user=care.school_admin,
    )
    GroupRobot.objects.update(url=_robot_url(robot_server))  # the test's robot, over plain HTTP
    with django_capture_on_commit_callbacks(execute=True):
        care_weekly_remind()
    ((path, body),) = _Robot.received
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    timestamp = query["timestamp"][0]
    expected = base64.b64encode(hmac.new(b"SECabc", f"{timestamp}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected] and query["access_token"] == ["abc"]
    assert "每周一见尚有 1 人未记录" in body["text"]["content"]
    assert dingtalk_signed_url("https://x/y?a=1", "s", now_ms=1).startswith("https://x/y?a=1&timestamp=1&sign=")


def test_a_failing_robot_is_shown_to_the_admin_and_given_up_not_retried_forever(care, robot_server, settings, login):
    _Robot.answer = {"errcode": 310000, "errmsg": "sign not match"}
    robot = GroupRobot.objects.create(school=care.school, kind="wecom", url=_robot_url(robot_server))
    message = WebhookMessage.objects.create(content="【提醒】", school=care.school, attempts=ATTEMPTS_MAX - 1)
    notify_webhook_send.apply(args=[message.pk])
    message.refresh_from_db()
    robot.refresh_from_db()
    assert message.given_up_at is not None and message.sent_at is None
    assert robot.failing_since is not None and "310000" in robot.last_error
    page = login(care.school_admin).get(reverse("care_overview", args=[care.school.pk])).content.decode()
    assert 'data-testid="robot-failing"' in page
    notify_webhook_send.apply(args=[message.pk])
    assert len(_Robot.received) == 1  # a given-up message is not posted again


def test_a_digest_fits_the_wecom_limit_in_bytes():
    text = "\n".join(f"三年级（{n}）班 李老师：{n} 人" for n in range(400))
    cut = fit_bytes(text, ROBOT_TEXT_MAX_BYTES)
    assert len(cut.encode("utf-8")) <= ROBOT_TEXT_MAX_BYTES and cut.endswith("（更多请登录系统查看）")


def test_reminders_wait_in_the_outbox_when_no_robot_is_reachable(care, settings, django_capture_on_commit_callbacks):
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/down"
    with django_capture_on_commit_callbacks(execute=True):
        care_asks_remind()
    message = WebhookMessage.objects.get()
    assert message.school == care.school and message.sent_at is None and message.attempts >= 1
    assert timezone.now() - message.created_at < datetime.timedelta(minutes=1)


def test_the_care_overview_keeps_its_query_count_whatever_the_children_and_days(
    care, login, django_assert_max_num_queries
):
    client = login(care.school_admin)
    url = reverse("care_overview", args=[care.school.pk])
    with django_assert_max_num_queries(12):
        client.get(url)
    for n in range(6):
        child = factories.StudentFactory(school_class=care.school_class if n % 2 else care.plain_class)
        factories.StudentCategoryFactory(student=child, category="unsupported", start=datetime.date(2026, 9, 1))
        CareAsk.objects.create(student=child, school=care.school, day=datetime.date(2026, 10, 13), outcome="face")
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert response.context["log"].compliance.children == 7
    home = reverse("school_detail", args=[care.school.pk])
    with django_assert_max_num_queries(25):
        client.get(home)


def test_compliance_over_a_chosen_period_counts_only_its_school_days(care):
    CareAsk.objects.create(student=care.student, school=care.school, day=datetime.date(2026, 10, 12), outcome="face")
    figures = care_compliance_by_school([care.school.pk], start=datetime.date(2026, 10, 8))[care.school.pk]
    assert (figures.asks_done, figures.asks_due) == (1, 5)  # 8, 9, 10, 12, 13 October


def test_a_students_page_links_to_the_plan_to_write_and_the_care_log(care, login):
    factories.StudentCategoryFactory(student=care.student, category="left_behind", start=datetime.date(2026, 8, 1))
    page = login(care.head_teacher).get(reverse("student_detail", args=[care.student.public_id])).content.decode()
    links = page[page.index('data-testid="student-ledgers"') :][:800]
    assert "待建档" in links and reverse("care_child", args=[care.student.public_id]) in links
    plain = login(care.teacher).get(reverse("student_detail", args=[care.student.public_id])).content.decode()
    assert 'data-testid="student-ledgers"' not in plain  # a teacher of the class who is not its head teacher


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_engines_interval_count_equals_the_care_logs_day_by_day_rule(world, frozen, seed):
    """``care_compliance_by_periods`` (the engine's: by intervals, from tuples) against
    ``care_compliance_by_unit`` (each child day by day, the care log's own ``_child``) on random
    categories that start, end and overlap, a school closure, an extra school day, asks on school
    and non-school days, and meetings, for the whole year and three periods."""
    import random

    from ledgers.care import care_compliance_by_periods, care_compliance_by_unit
    from ledgers.care_models import CareMeeting

    rng = random.Random(seed)
    schools = [world.school, world.other_school]
    day0 = datetime.date(2026, 8, 20)
    CalendarOverride.objects.create(
        school=world.school, kind=CalendarOverride.Kind.CLOSURE, name="停课", start=datetime.date(2026, 9, 14),
        end=datetime.date(2026, 9, 16),
    )  # fmt: skip
    CalendarOverride.objects.create(
        school=None, kind=CalendarOverride.Kind.WORKDAY, name="补课", start=datetime.date(2026, 9, 19),
        end=datetime.date(2026, 9, 19),
    )  # fmt: skip
    for school in schools:
        school_class = factories.SchoolClassFactory(school=school)
        for _ in range(6):
            student = factories.StudentFactory(school=school, school_class=rng.choice([school_class, None]))
            for _ in range(rng.randint(1, 3)):
                start = day0 + datetime.timedelta(days=rng.randint(-30, 50))
                end = rng.choice([None, start + datetime.timedelta(days=rng.randint(0, 40))])
                factories.StudentCategoryFactory(
                    student=student, category=rng.choice(["orphan", "unsupported", "left_behind"]), start=start, end=end
                )
            for offset in rng.sample(range(0, 60), 25):
                CareAsk.objects.create(
                    student=student, school=school, day=day0 + datetime.timedelta(days=offset),
                    outcome=CareAsk.Outcome.FACE,
                )  # fmt: skip
            for week in rng.sample(range(0, 9), 5):
                monday = datetime.date(2026, 8, 17) + datetime.timedelta(weeks=week)
                CareMeeting.objects.create(student=student, school=school, week_start=monday, met_on=monday)
    ids = [school.pk for school in schools]
    periods = {
        0: (None, TODAY),
        1: (datetime.date(2026, 9, 1), datetime.date(2026, 9, 30)),
        2: (datetime.date(2026, 9, 10), TODAY),
        3: (datetime.date(2026, 10, 20), TODAY),  # not begun: nothing due
    }
    by_periods = care_compliance_by_periods(ids, periods)
    for key, (start, today) in periods.items():
        by_school, by_class = care_compliance_by_unit(ids, today=today, start=start)
        engine_school, engine_class = by_periods[key]
        assert {pk: vars(c) for pk, c in engine_school.items()} == {pk: vars(c) for pk, c in by_school.items()}
        assert {pk: vars(c) for pk, c in engine_class.items()} == {pk: vars(c) for pk, c in by_class.items()}
    assert sum(c.asks_due for c in by_periods[0][0].values()) > 0
