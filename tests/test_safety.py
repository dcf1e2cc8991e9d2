"""The safety report (家访安全报告, DESIGN §5): filing, 平安返回, the overdue sweep and its alarm,
the school's board, closing, notifications and the webhook, and who reaches which page."""

import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import factory
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from schools.models import AuditEvent, Role
from tests import factories
from tests.conftest import require_postgresql
from visits.context_processors import unread_notifications
from visits.models import Notification, SafetyReport, WebhookMessage
from visits.notify import notify
from visits.safety import (
    safety_board,
    safety_report_check_in,
    safety_report_close,
    safety_report_create,
    safety_reports_mark_overdue,
)
from visits.tasks import notify_webhook_outbox_sweep, safety_reports_overdue_sweep

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime.datetime(2026, 5, 20, 14, 0, tzinfo=SHANGHAI)


class SafetyReportFactory(factory.django.DjangoModelFactory):
    """A report stored as it stands, past or present, without the filing rules."""

    class Meta:
        model = SafetyReport
        skip_postgeneration_save = True

    teacher = factory.SubFactory(factories.UserFactory)
    school = factory.SelfAttribute("teacher.school")
    address = "城关镇幸福路 8 号"
    planned_start = factory.LazyFunction(timezone.now)
    expected_minutes = 60
    phone = "13812345678"
    due_at = factory.LazyAttribute(
        lambda o: o.planned_start + datetime.timedelta(minutes=o.expected_minutes + o.school.safety_grace_minutes)
    )

    @factory.post_generation
    def students(obj, create, extracted, **kwargs):  # noqa: N805
        if create and extracted:
            obj.students.set(extracted)

    @factory.post_generation
    def companions(obj, create, extracted, **kwargs):  # noqa: N805
        if create and extracted:
            obj.companions.set(extracted)


def _file(world, **overrides) -> SafetyReport:
    arguments = {
        "teacher": world.teacher,
        "students": [world.student],
        "companions": [],
        "address": "城关镇幸福路 8 号",
        "planned_start": timezone.now(),
        "expected_minutes": 60,
        "phone": "13812345678",
        **overrides,
    }
    return safety_report_create(**arguments)


def _form_data(world, **overrides) -> dict:
    data = {
        "students": [str(world.student.public_id)],
        "address": "城关镇幸福路 8 号 3 单元",
        "planned_start": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "expected_minutes": "90",
        "phone": "138 1234 5678",
        "companions": [str(world.head_teacher.pk)],
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _overdue(world, **overrides) -> SafetyReport:
    """A report that fell due an hour ago (60 minutes planned, 30 of grace) and was never checked in."""
    arguments = {
        "teacher": world.teacher,
        "planned_start": timezone.now() - datetime.timedelta(minutes=150),
        "students": [world.student],
        **overrides,
    }
    return SafetyReportFactory(**arguments)


# --- filing ------------------------------------------------------------------------------------


def test_the_form_opened_from_a_student_starts_with_the_roster_address_and_the_teachers_phone(world, login):
    world.student.address = "城关镇和平街 12 号"
    world.student.save()
    world.teacher.phone = "13900001111"
    world.teacher.save()

    response = login(world.teacher).get(reverse("safety_new"), {"student": str(world.student.public_id)})

    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial["address"] == "城关镇和平街 12 号"
    assert form.initial["students"] == [world.student.public_id]
    assert form.initial["phone"] == "13900001111"
    assert form.initial["expected_minutes"] == 60
    page = response.content.decode()
    assert 'value="城关镇和平街 12 号"' in page
    assert "王小明（三年级（2）班）" in page
    assert "周小强" not in page  # a class the teacher does not teach
    assert "李班主任" in page and "张老师（" not in page  # colleagues as companions, not the teacher


def test_the_planned_start_defaults_to_now_rounded_to_five_minutes(world, login):
    with time_machine.travel(datetime.datetime(2026, 5, 20, 14, 3, 40, tzinfo=SHANGHAI), tick=False):
        response = login(world.teacher).get(reverse("safety_new"))

    assert response.context["form"].initial["planned_start"] == datetime.datetime(2026, 5, 20, 14, 5, tzinfo=SHANGHAI)
    assert 'value="2026-05-20T14:05"' in response.content.decode()


def test_a_teacher_files_a_report_and_due_at_includes_the_schools_grace_period(world, login):
    world.school.safety_grace_minutes = 45
    world.school.save()
    start = timezone.localtime().replace(second=0, microsecond=0)

    response = login(world.teacher).post(
        reverse("safety_new"), _form_data(world, planned_start=start.strftime("%Y-%m-%dT%H:%M"))
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("safety_mine")
    report = SafetyReport.objects.get()
    assert report.school == world.school
    assert report.teacher == world.teacher
    assert report.status == SafetyReport.Status.OUT
    assert list(report.students.all()) == [world.student]
    assert list(report.companions.all()) == [world.head_teacher]
    assert report.address == "城关镇幸福路 8 号 3 单元"
    assert report.phone == "13812345678"
    assert report.planned_start == start
    assert report.due_at == start + datetime.timedelta(minutes=90 + 45)
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANGE, object_type="visits.SafetyReport")
    assert (event.user, event.object_id, event.detail["event"]) == (world.teacher, str(report.public_id), "filed")


def test_a_double_tap_on_submit_over_a_slow_connection_files_one_report(world, login):
    client = login(world.teacher)
    data = _form_data(world)

    first = client.post(reverse("safety_new"), data)
    second = client.post(reverse("safety_new"), data)

    assert first.status_code == second.status_code == 302
    assert SafetyReport.objects.count() == 1


BAD_INPUT = [
    ("nothing filled in", lambda w: dict.fromkeys(_form_data(w), ""), ["请至少选择一名学生。", "请填写家访地址。"]),
    ("an address past 200 characters", lambda w: {"address": "路" * 201}, ["家访地址不能超过 200 个字"]),
    (
        "a start more than seven days ahead",
        lambda w: {"planned_start": (timezone.localtime() + datetime.timedelta(days=8)).strftime("%Y-%m-%dT%H:%M")},
        ["不能晚于 7 天后"],
    ),
    (
        "a start more than twelve hours ago",
        lambda w: {"planned_start": (timezone.localtime() - datetime.timedelta(hours=13)).strftime("%Y-%m-%dT%H:%M")},
        ["不能早于 12 小时前"],
    ),
    ("a start that is not a time", lambda w: {"planned_start": "明天下午"}, ["请按“年-月-日 时:分”填写"]),
    ("a visit of five minutes", lambda w: {"expected_minutes": "5"}, ["预计用时应在 10 到 480 分钟之间"]),
    ("a visit of nine hours", lambda w: {"expected_minutes": "540"}, ["预计用时应在 10 到 480 分钟之间"]),
    ("a phone that is not one", lambda w: {"phone": "12345"}, ["不是有效的手机号或固定电话"]),
    (
        "another school's student smuggled in",
        lambda w: {"students": [str(w.other_student.public_id)]},
        ["所选学生不在您的学生范围内"],
    ),
    (
        "a student of a class the teacher does not teach",
        lambda w: {"students": [str(w.student.public_id), str(w.plain_student.public_id)]},
        ["所选学生不在您的学生范围内"],
    ),
    ("a student id that is not one", lambda w: {"students": ["1 OR 1=1"]}, ["所选学生不在您的学生范围内"]),
    (
        "another school's teacher smuggled in as companion",
        lambda w: {"companions": [str(w.other_teacher.pk)]},
        ["同行人员必须是本校在职教职工"],
    ),
]


@pytest.mark.parametrize(("case", "overrides", "messages"), BAD_INPUT, ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_refused_in_chinese_and_nothing_is_saved(world, login, case, overrides, messages):
    response = login(world.teacher).post(reverse("safety_new"), _form_data(world, **overrides(world)))

    assert response.status_code == 200, case
    page = response.content.decode()
    assert "报备未保存" in page
    for message in messages:
        assert message in page, message
    assert SafetyReport.objects.count() == 0
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CHANGE).exists()


def test_a_colleague_who_has_left_cannot_be_named_as_companion(world, login):
    world.head_teacher.is_active = False
    world.head_teacher.save()

    response = login(world.teacher).post(reverse("safety_new"), _form_data(world))

    assert "同行人员必须是本校在职教职工" in response.content.decode()
    assert SafetyReport.objects.count() == 0


@pytest.mark.parametrize(
    ("argument", "value", "field"),
    [
        ("students", lambda w: [w.other_student], "students"),
        ("students", lambda w: [w.plain_student], "students"),
        ("companions", lambda w: [w.other_teacher], "companions"),
        ("companions", lambda w: [w.teacher], "companions"),
    ],
)
def test_the_service_checks_scope_itself_whatever_the_caller(world, argument, value, field):
    with pytest.raises(ValidationError) as raised:
        _file(world, **{argument: value(world)})

    assert field in raised.value.message_dict
    assert SafetyReport.objects.count() == 0


# --- 平安返回 ------------------------------------------------------------------------------------


def test_checking_in_returns_the_report_and_opens_the_visit_record_form_prefilled(world, login):
    report = _file(world)

    response = login(world.teacher).post(reverse("safety_check_in", args=[report.public_id]))

    assert response.status_code == 302
    assert response["Location"] == f"/visits/new/?report={report.public_id}"
    report.refresh_from_db()
    assert report.status == SafetyReport.Status.RETURNED
    assert report.checked_in_at is not None
    assert AuditEvent.objects.filter(object_id=str(report.public_id), detail__event="checked_in").count() == 1


def test_tapping_check_in_twice_changes_nothing_the_second_time(world, login):
    report = _file(world)
    client = login(world.teacher)
    client.post(reverse("safety_check_in", args=[report.public_id]))
    first = SafetyReport.objects.get().checked_in_at

    response = client.post(reverse("safety_check_in", args=[report.public_id]))

    assert response["Location"] == f"/visits/new/?report={report.public_id}"
    assert SafetyReport.objects.get().checked_in_at == first
    assert AuditEvent.objects.filter(object_id=str(report.public_id), detail__event="checked_in").count() == 1


def test_a_late_check_in_ends_the_overdue_state_keeps_the_alarm_time_and_tells_the_admins(world):
    report = _overdue(world)
    safety_reports_mark_overdue()
    report.refresh_from_db()
    alarmed_at = report.overdue_notified_at

    safety_report_check_in(report=report, acting_user=world.teacher)

    report.refresh_from_db()
    assert report.status == SafetyReport.Status.RETURNED
    assert report.overdue_notified_at == alarmed_at
    titles = list(Notification.objects.filter(user=world.school_admin).values_list("title", flat=True))
    assert titles == ["城关第一小学：张老师已平安返回", "城关第一小学：张老师家访超时未报平安"]


def test_check_in_is_only_for_the_teacher_who_filed(world):
    report = _file(world, companions=[world.head_teacher])

    with pytest.raises(ValidationError):
        safety_report_check_in(report=report, acting_user=world.head_teacher)

    report.refresh_from_db()
    assert report.status == SafetyReport.Status.OUT


def test_the_mine_page_shows_open_reports_with_the_check_in_button(world, login):
    report = _file(world, companions=[world.head_teacher])
    SafetyReportFactory(teacher=world.teacher, status=SafetyReport.Status.RETURNED, address="东街 1 号")

    page = login(world.teacher).get(reverse("safety_mine")).content.decode()
    companion_page = login(world.head_teacher).get(reverse("safety_mine")).content.decode()

    assert reverse("safety_check_in", args=[report.public_id]) in page
    assert "平安返回" in page and "东街 1 号" in page and "已平安返回" in page
    assert reverse("safety_check_in", args=[report.public_id]) not in companion_page
    assert "您是同行人员" in companion_page


# --- the board and the overdue sweep -----------------------------------------------------------


def test_the_board_shows_who_is_out_and_who_is_overdue_with_the_phone_to_call(world, login, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"  # a beat runs the sweep: the page must not
    out = _file(world, phone="13811112222")
    late = _overdue(world, phone="13933334444", teacher=world.head_teacher)
    back = SafetyReportFactory(
        teacher=world.teacher, status=SafetyReport.Status.RETURNED, checked_in_at=timezone.now(), phone="13755556666"
    )
    SafetyReportFactory(teacher=world.other_teacher, phone="13677778888")

    response = login(world.school_admin).get(reverse("safety_board"))

    board = response.context["board"]
    assert board.out == [out]
    assert board.overdue == [late]
    assert board.ended_today == [back]
    page = response.content.decode()
    assert 'href="tel:13811112222"' in page
    assert 'href="tel:13933334444"' in page
    assert "超时 60 分钟" in page
    assert "13677778888" not in page  # another school's teacher
    assert '<meta http-equiv="refresh" content="60">' in page
    assert "<script>" not in page and "onclick" not in page


def test_the_board_shows_a_report_overdue_as_soon_as_due_at_passes_before_the_job_has_run(world, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    with time_machine.travel(T0, tick=False):
        report = _file(world, planned_start=T0, expected_minutes=60)  # due at 15:30 with the 30-minute grace

    assert safety_board(world.school, T0 + datetime.timedelta(minutes=89)).out == [report]
    board = safety_board(world.school, T0 + datetime.timedelta(minutes=90))
    assert board.overdue == [report]
    assert SafetyReport.objects.get().status == SafetyReport.Status.OUT  # the sweep has not run
    assert not Notification.objects.exists()


def test_without_a_beat_loading_the_board_runs_the_sweep_and_raises_the_alarm(world, login, settings):
    settings.CELERY_BROKER_URL = None  # the embedded default
    report = _overdue(world)

    login(world.school_admin).get(reverse("safety_board"))

    report.refresh_from_db()
    assert report.status == SafetyReport.Status.OVERDUE
    assert Notification.objects.filter(user=world.school_admin).count() == 1


def test_the_job_marks_overdue_reports_and_alerts_each_school_admin_once(world):
    second_admin = factories.UserFactory(role=Role.SCHOOL_ADMIN, school=world.school, real_name="钱副校长")
    factories.UserFactory(role=Role.SCHOOL_ADMIN, school=world.school, is_active=False)
    with time_machine.travel(T0, tick=False):
        early = _file(world, planned_start=T0, expected_minutes=60, companions=[world.head_teacher])
        later = _file(world, planned_start=T0 + datetime.timedelta(hours=2), expected_minutes=60)

    with time_machine.travel(T0 + datetime.timedelta(minutes=91), tick=False):
        assert safety_reports_mark_overdue() == 1
        assert safety_reports_mark_overdue() == 0  # a second run notifies nothing new

    early.refresh_from_db()
    later.refresh_from_db()
    assert early.status == SafetyReport.Status.OVERDUE
    assert early.overdue_notified_at == T0 + datetime.timedelta(minutes=91)
    assert later.status == SafetyReport.Status.OUT
    recipients = sorted(Notification.objects.values_list("user__username", flat=True))
    assert recipients == sorted([world.school_admin.username, second_admin.username])
    notification = Notification.objects.filter(user=world.school_admin).get()
    assert notification.title == "城关第一小学：张老师家访超时未报平安"
    assert "13812345678" in notification.body and "同行：李班主任" in notification.body
    assert "王小明" not in notification.body and "幸福路" not in notification.body
    assert notification.link == reverse("safety_detail", args=[early.public_id])
    assert AuditEvent.objects.filter(object_id=str(early.public_id), detail__event="overdue", user=None).count() == 1

    with time_machine.travel(T0 + datetime.timedelta(hours=4), tick=False):
        assert safety_reports_overdue_sweep.delay().get() == 1
    assert Notification.objects.count() == 4


def test_beat_runs_the_sweep_every_five_minutes(settings):
    assert settings.CELERY_BEAT_SCHEDULE["safety-reports-overdue"] == {
        "task": "visits.tasks.safety_reports_overdue_sweep",
        "schedule": 300.0,
    }


def test_returned_and_closed_reports_are_never_marked_overdue(world):
    SafetyReportFactory(
        teacher=world.teacher,
        planned_start=timezone.now() - datetime.timedelta(hours=3),
        status=SafetyReport.Status.RETURNED,
    )
    SafetyReportFactory(
        teacher=world.teacher,
        planned_start=timezone.now() - datetime.timedelta(hours=3),
        status=SafetyReport.Status.CLOSED,
    )

    assert safety_reports_mark_overdue() == 0
    assert not Notification.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_alert_each_school_admin_exactly_once_per_report(world, monkeypatch):
    require_postgresql("row locks (SKIP LOCKED) need PostgreSQL")
    monkeypatch.setattr("visits.safety.SWEEP_BATCH", 4)  # many small claims, so the two runs interleave
    second_admin = factories.UserFactory(role=Role.SCHOOL_ADMIN, school=world.school)
    reports = [_overdue(world) for _ in range(24)]
    now = timezone.now()
    barrier = threading.Barrier(2)
    marked: list[int] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            barrier.wait(timeout=10)
            marked.append(safety_reports_mark_overdue(now=now))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(marked) == len(reports)
    for admin in (world.school_admin, second_admin):
        links = list(Notification.objects.filter(user=admin).values_list("link", flat=True))
        assert sorted(links) == sorted(reverse("safety_detail", args=[r.public_id]) for r in reports)
    assert not Notification.objects.filter(user=world.other_admin).exists()
    assert set(SafetyReport.objects.values_list("status", flat=True)) == {SafetyReport.Status.OVERDUE}


# --- closing -----------------------------------------------------------------------------------


def test_closing_an_overdue_report_records_who_and_why(world, login):
    report = _overdue(world)
    safety_reports_mark_overdue()

    response = login(world.school_admin).post(
        reverse("safety_close", args=[report.public_id]), {"reason": "已电话联系，张老师手机没电，已安全到家。"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("safety_board")
    report.refresh_from_db()
    assert report.status == SafetyReport.Status.CLOSED
    assert report.closed_by == world.school_admin
    assert report.closed_at is not None
    assert report.close_reason == "已电话联系，张老师手机没电，已安全到家。"
    assert report.overdue_notified_at is not None
    event = AuditEvent.objects.get(object_id=str(report.public_id), detail__event="closed")
    assert event.user == world.school_admin
    assert event.detail["reason"] == report.close_reason
    page = login(world.school_admin).get(reverse("safety_detail", args=[report.public_id])).content.decode()
    assert "孙校长" in page and "手机没电" in page


@pytest.mark.parametrize(
    ("reason", "message"), [("", "请填写关闭原因。"), ("  ", "请填写关闭原因。"), ("因" * 301, "不能超过 300 个字")]
)
def test_closing_needs_a_reason_of_at_most_300_characters(world, login, reason, message):
    report = _overdue(world)

    response = login(world.school_admin).post(reverse("safety_close", args=[report.public_id]), {"reason": reason})

    assert response.status_code == 400
    assert message in response.content.decode()
    report.refresh_from_db()
    assert report.status == SafetyReport.Status.OUT
    assert report.closed_by is None


def test_a_returned_report_cannot_be_closed(world):
    report = _file(world)
    safety_report_check_in(report=report, acting_user=world.teacher)

    with pytest.raises(ValidationError, match="无需关闭"):
        safety_report_close(report=report, acting_user=world.school_admin, reason="误报")


# --- notifications -----------------------------------------------------------------------------


def test_the_notification_page_lists_the_users_messages_and_marks_them_read(world, login):
    notify(users=[world.school_admin], title="测试通知", body="内容一", link="/safety/board/")
    notify(users=[world.other_admin], title="别校通知", body="内容二", link="")
    request = RequestFactory().get("/")
    request.user = world.school_admin
    assert unread_notifications(request) == {"unread_notifications": 1}

    response = login(world.school_admin).get(reverse("notification_list"))

    page = response.content.decode()
    assert "测试通知" in page and "内容一" in page and "别校通知" not in page
    assert 'text-bg-danger me-1">新</span>测试通知' in page
    assert unread_notifications(request) == {"unread_notifications": 0}
    assert Notification.objects.get(user=world.other_admin).read_at is None


def test_the_unread_count_is_one_query_and_zero_for_anonymous_visitors(world, django_assert_num_queries):
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    with django_assert_num_queries(0):
        assert unread_notifications(request) == {"unread_notifications": 0}
    request.user = world.teacher
    with django_assert_num_queries(1):
        assert unread_notifications(request) == {"unread_notifications": 0}


# --- the webhook -------------------------------------------------------------------------------


class _Robot(BaseHTTPRequestHandler):
    """A WeCom group robot on 127.0.0.1: records each POST, answers from a script, then 200."""

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))
        status, answer = self.server.answers.pop(0) if self.server.answers else (200, b'{"errcode":0,"errmsg":"ok"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def robot(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Robot)
    server.received, server.answers = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key=test-key"
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_an_overdue_report_is_posted_to_the_webhook_after_the_commit(world, robot, django_capture_on_commit_callbacks):
    _overdue(world, companions=[world.head_teacher])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        safety_reports_mark_overdue()
        assert robot.received == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()

    assert len(robot.received) == 1
    path_, content_type, body = robot.received[0]
    assert path_ == "/cgi-bin/webhook/send?key=test-key"
    assert content_type == "application/json; charset=utf-8"
    message = json.loads(body.decode("utf-8"))
    assert message["msgtype"] == "text"
    content = message["text"]["content"]
    assert "城关第一小学：张老师家访超时未报平安" in content and "13812345678" in content
    assert "王小明" not in content and "幸福路" not in content  # the group chat gets no student data
    assert Notification.objects.filter(user=world.school_admin).count() == 1
    assert WebhookMessage.objects.get().sent_at is not None


def test_a_robot_message_whose_task_was_lost_is_sent_by_the_outbox_sweep(
    world, robot, django_capture_on_commit_callbacks
):
    _overdue(world)
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost the queued task
        safety_reports_mark_overdue()
    assert robot.received == [] and WebhookMessage.objects.get().sent_at is None

    assert notify_webhook_outbox_sweep() == []  # too early: the task may still be on its way
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=16)):
        swept = notify_webhook_outbox_sweep()
        assert notify_webhook_outbox_sweep() == []  # sent: not again

    assert len(swept) == 1 and len(robot.received) == 1
    assert "家访超时未报平安" in json.loads(robot.received[0][2])["text"]["content"]
    assert WebhookMessage.objects.get().sent_at is not None


@pytest.fixture
def eager_retries():
    """Eager tasks that retry in-process, as a worker would (minus the backoff delays). The project
    propagates eager errors at once instead, so that the embedded default never blocks a request
    on a robot that is down."""
    from homevisit.celery import app

    previous = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = previous


@pytest.mark.parametrize(
    "first_answer",
    [(500, b"busy"), (200, b'{"errcode":45009,"errmsg":"api freq out of limit"}')],
    ids=["http error", "wecom errcode"],
)
def test_a_failed_webhook_post_is_retried(
    world, robot, eager_retries, django_capture_on_commit_callbacks, first_answer
):
    robot.answers.append(first_answer)
    _overdue(world)

    with django_capture_on_commit_callbacks(execute=True):
        safety_reports_mark_overdue()

    assert len(robot.received) == 2
    assert robot.received[0][2] == robot.received[1][2]


def test_a_robot_that_stays_down_is_tried_nine_times_then_given_up(
    world, robot, eager_retries, django_capture_on_commit_callbacks
):
    robot.answers.extend([(503, b"down")] * 20)
    _overdue(world)

    with django_capture_on_commit_callbacks(execute=True):
        safety_reports_mark_overdue()

    assert len(robot.received) == 9  # the first try and eight retries
    message = WebhookMessage.objects.get()
    assert message.sent_at is None and message.attempts == 9 and "503" in message.last_error  # kept for the sweep


def test_a_robot_that_is_down_does_not_undo_the_alarm(world, robot, django_capture_on_commit_callbacks):
    robot.answers.extend([(503, b"down")] * 20)
    report = _overdue(world)

    with django_capture_on_commit_callbacks(execute=True):
        assert safety_reports_mark_overdue() == 1

    assert len(robot.received) == 1  # in-process: one try, the error logged, the page not held up
    report.refresh_from_db()
    assert report.status == SafetyReport.Status.OVERDUE
    assert Notification.objects.filter(user=world.school_admin).count() == 1


def test_without_a_webhook_url_only_in_app_notifications_are_written(
    world, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_WEBHOOK_URL = ""
    with django_capture_on_commit_callbacks() as callbacks:
        notify(users=[world.teacher, world.teacher], title="标题", body="内容", link="")

    assert callbacks == []
    assert Notification.objects.filter(user=world.teacher).count() == 1
    assert not WebhookMessage.objects.exists()


# --- who reaches what --------------------------------------------------------------------------

TEACHERS = {"teacher", "head_teacher", "other_teacher"}
SCHOOL_ADMINS = {"school_admin", "other_admin"}
ALL_USERS = {
    "teacher",
    "head_teacher",
    "school_admin",
    "zone_admin",
    "inspector",
    "bureau_admin",
    "other_teacher",
    "other_admin",
}

GET_MATRIX = [
    ("new report", lambda w: reverse("safety_new"), TEACHERS),
    (
        "new report from an own student",
        lambda w: reverse("safety_new") + f"?student={w.student.public_id}",
        {"teacher", "head_teacher"},
    ),
    (
        "new report from a student the teacher does not teach",
        lambda w: reverse("safety_new") + f"?student={w.plain_student.public_id}",
        set(),
    ),
    ("new report from a broken link", lambda w: reverse("safety_new") + "?student=not-a-uuid", set()),
    ("my reports", lambda w: reverse("safety_mine"), TEACHERS),
    ("safety board", lambda w: reverse("safety_board"), SCHOOL_ADMINS),
    ("notifications", lambda w: reverse("notification_list"), ALL_USERS),
    (
        "a report",
        lambda w: reverse("safety_detail", args=[SafetyReportFactory(teacher=w.teacher).public_id]),
        {"teacher", "school_admin"},
    ),
    (
        "a report the head teacher goes along on",
        lambda w: reverse(
            "safety_detail", args=[SafetyReportFactory(teacher=w.teacher, companions=[w.head_teacher]).public_id]
        ),
        {"teacher", "head_teacher", "school_admin"},
    ),
]


@pytest.mark.parametrize("user_key", sorted(ALL_USERS))
@pytest.mark.parametrize(("description", "url_for", "allowed"), GET_MATRIX, ids=[row[0] for row in GET_MATRIX])
def test_each_role_gets_the_safety_page_or_404(world, login, user_key, description, url_for, allowed):
    url = url_for(world)
    denied_before = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()

    response = login(world.users()[user_key]).get(url)

    expected = 200 if user_key in allowed else 404
    assert response.status_code == expected, f"{user_key} on {description}"
    denied_after = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()
    assert denied_after == denied_before + (expected == 404)


POST_MATRIX = [
    ("check-in", "safety_check_in", {}, {"teacher"}),
    ("close", "safety_close", {"reason": "已电话联系，平安。"}, {"school_admin"}),
]


@pytest.mark.parametrize("user_key", sorted(ALL_USERS))
@pytest.mark.parametrize(("description", "name", "data", "allowed"), POST_MATRIX, ids=[row[0] for row in POST_MATRIX])
def test_each_role_may_check_in_or_close_or_gets_404(world, login, user_key, description, name, data, allowed):
    report = SafetyReportFactory(teacher=world.teacher, companions=[world.head_teacher])
    denied_before = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()

    response = login(world.users()[user_key]).post(reverse(name, args=[report.public_id]), data)

    expected = 302 if user_key in allowed else 404
    assert response.status_code == expected, f"{user_key} on {description}"
    denied_after = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count()
    assert denied_after == denied_before + (expected == 404)
    report.refresh_from_db()
    assert report.is_open == (expected == 404)


def test_viewing_a_report_with_its_home_address_is_logged(world, login):
    report = SafetyReportFactory(teacher=world.teacher)

    login(world.school_admin).get(reverse("safety_detail", args=[report.public_id]))

    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW)
    assert (event.user, event.object_type, event.object_id) == (
        world.school_admin,
        "visits.SafetyReport",
        str(report.public_id),
    )


def test_check_in_and_close_answer_only_post(world, login):
    report = SafetyReportFactory(teacher=world.teacher)

    assert login(world.teacher).get(reverse("safety_check_in", args=[report.public_id])).status_code == 405
    assert login(world.school_admin).get(reverse("safety_close", args=[report.public_id])).status_code == 405


def test_anonymous_visitors_are_sent_to_login(world, client):
    report = SafetyReportFactory(teacher=world.teacher)
    for url in [
        reverse("safety_new"),
        reverse("safety_mine"),
        reverse("safety_board"),
        reverse("notification_list"),
        reverse("safety_detail", args=[report.public_id]),
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login"))


# --- query counts ------------------------------------------------------------------------------


def _many_reports(world, count: int) -> None:
    """Reports of every kind the pages list: out, overdue (already marked), returned and closed today."""
    now = timezone.now()
    kinds = [
        {},
        {"status": SafetyReport.Status.OVERDUE, "planned_start": now - datetime.timedelta(hours=3)},
        {"status": SafetyReport.Status.RETURNED, "checked_in_at": now},
        {"status": SafetyReport.Status.CLOSED, "closed_at": now, "closed_by": world.school_admin},
    ]
    for number in range(count):
        SafetyReportFactory(
            teacher=world.teacher,
            students=[world.student],
            companions=[world.head_teacher],
            **kinds[number % len(kinds)],
        )


@pytest.mark.parametrize(
    ("url_name", "user_key"), [("safety_board", "school_admin"), ("safety_mine", "teacher")], ids=["board", "mine"]
)
def test_the_board_and_mine_pages_take_the_same_queries_for_4_or_20_reports(
    world, login, django_assert_max_num_queries, url_name, user_key
):
    client = login(world.users()[user_key])
    _many_reports(world, 4)  # one of each kind, so that every list on the page is filled
    client.get(reverse(url_name))  # warm the session and caches
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse(url_name)).status_code == 200

    _many_reports(world, 16)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse(url_name))

    assert response.status_code == 200
    assert len(few.captured_queries) <= 16
