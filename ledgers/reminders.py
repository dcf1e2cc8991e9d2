"""Reminders of the special-student ledgers (DESIGN §6 "Reminders"): Celery beat jobs that tell the
head teachers and school admins what is missing, in the app always, and once per school and run in
the school's group robot (``visits.notify.robot_digest_queue``).

Robot digests name classes, teachers and counts only: never a student, never a category (a group
chat is read by many). In-app messages go to people who see the students and may name them.

- ``care_asks_evening``: each school day's evening, the day's missing 每日一问.
- ``care_weekly``: at the end of the week, the week's missing 每周一见 and the plans due for review.
- ``support_prompts_daily``: each morning, students who became special without a plan (待建档), and
  plans whose student lost a category (待复核).
"""

import datetime
from collections import defaultdict

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from ledgers.calendar import school_calendars, week_start
from ledgers.care import care_students
from ledgers.care_models import CareAsk, CareMeeting, ReminderSent
from ledgers.support import plans_due_for_review, responsible_of, support_prompts_raise
from schools.models import AuditEvent, Role, School, User
from schools.services import audit_event_record
from visits.models import GroupRobot
from visits.notify import notify, robot_digest_queue

NAMES_SHOWN = 20


def _admins(school_ids) -> dict[int, list[User]]:
    admins: dict[int, list[User]] = defaultdict(list)
    for admin in User.objects.filter(school_id__in=list(school_ids), role=Role.SCHOOL_ADMIN, is_active=True):
        admins[admin.school_id].append(admin)
    return admins


def _claim(kind: str, school_id: int, day: datetime.date) -> bool:
    """True the first time a run of ``kind`` for the school and day claims it."""
    try:
        with transaction.atomic():
            ReminderSent.objects.create(kind=kind, school_id=school_id, day=day)
    except IntegrityError:
        return False
    return True


def _names(items: list[str]) -> str:
    shown = "、".join(items[:NAMES_SHOWN])
    return shown + (f"等 {len(items)} 人" if len(items) > NAMES_SHOWN else "")


def care_asks_remind(*, today: datetime.date | None = None) -> dict[int, int]:
    """For every school where today is a school day: the care children with no ask recorded today,
    to their head teacher and the school admins, and one robot digest per school. Returns
    {school id: children missing}. A second run the same day sends nothing."""
    today = today or timezone.localdate()
    children = list(
        care_students(School.objects.values("pk"), today=today).select_related("school_class__head_teacher")
    )
    schools = {c.school_id for c in children}
    calendars = school_calendars(schools)
    done = set(CareAsk.objects.filter(day=today, student__in=children).values_list("student_id", flat=True))
    missing: dict[int, list] = defaultdict(list)
    for child in children:
        if child.pk not in done and calendars[child.school_id].is_school_day(today):
            missing[child.school_id].append(child)
    admins = _admins(missing)
    result = {}
    for school_id, pupils in missing.items():
        if not _claim("care_asks", school_id, today):
            continue
        with transaction.atomic():
            by_head: dict[User | None, list] = defaultdict(list)
            for pupil in pupils:
                by_head[pupil.school_class.head_teacher if pupil.school_class_id else None].append(pupil)
            link = reverse("care_overview", args=[school_id])
            for head, group in by_head.items():
                if head is not None:
                    notify(
                        users=[head],
                        title=f"每日一问：今天还有 {len(group)} 名学生未记录",
                        body=f"{today:%m月%d日}未记录：{_names([p.name for p in group])}。请在首页一键记录。",
                        link=reverse("home"),
                        robot=False,
                    )
            lines = [
                f"{_class_name(group[0])} {head.display_name if head else '未设班主任'}：{len(group)} 人"
                for head, group in by_head.items()
            ]
            notify(
                users=admins.get(school_id, []),
                title=f"每日一问：今天 {len(pupils)} 名学生未记录",
                body="；".join(lines)[:500],
                link=link,
                robot=False,
            )
            robot_digest_queue(
                school_id=school_id,
                content=f"【每日一问提醒】{today:%m月%d日}尚有 {len(pupils)} 人未记录\n" + "\n".join(lines),
            )
        result[school_id] = len(pupils)
    return result


def care_weekly_remind(*, today: datetime.date | None = None) -> dict[int, dict]:
    """At the week's end: this week's missing meetings (每周一见) to the school admins, the plans due
    for review to their responsible teachers and the admins; one robot digest per school."""
    today = today or timezone.localdate()
    monday = week_start(today)
    children = list(care_students(School.objects.values("pk"), today=today))
    calendars = school_calendars({c.school_id for c in children})
    met = set(CareMeeting.objects.filter(week_start=monday, student__in=children).values_list("student_id", flat=True))
    missing: dict[int, list] = defaultdict(list)
    for child in children:
        week_days = [monday + datetime.timedelta(days=n) for n in range(7)]
        if child.pk not in met and any(calendars[child.school_id].is_school_day(d) for d in week_days):
            missing[child.school_id].append(child)
    reviews = plans_due_for_review(today=today)
    schools = set(missing) | set(reviews)
    admins = _admins(schools)
    result = {}
    for school_id in schools:
        if not _claim("care_weekly", school_id, monday):
            continue
        pupils, plans = missing.get(school_id, []), reviews.get(school_id, [])
        with transaction.atomic():
            if pupils:
                notify(
                    users=admins.get(school_id, []),
                    title=f"每周一见：本周 {len(pupils)} 名学生未记录",
                    body=f"本周（{monday:%m月%d日}起）未记录：{_names([p.name for p in pupils])}。",
                    link=reverse("care_overview", args=[school_id]),
                    robot=False,
                )
            by_teacher: dict[User, list] = defaultdict(list)
            for plan in plans:
                teacher = responsible_of(plan.student, plan)
                if teacher is not None:
                    by_teacher[teacher].append(plan)
            for teacher, own in by_teacher.items():
                notify(
                    users=[teacher],
                    title=f"帮扶计划待复核：{len(own)} 份",
                    body=f"请复核：{_names([p.student.name for p in own])}。",
                    link=reverse("support_plan_detail", args=[own[0].public_id]),
                    robot=False,
                )
            if plans:
                notify(
                    users=admins.get(school_id, []),
                    title=f"帮扶计划待复核：{len(plans)} 份",
                    body=f"待复核：{_names([p.student.name for p in plans])}。",
                    link=reverse("support_overview", args=[school_id]) + "?status=overdue",
                    robot=False,
                )
            lines = []
            if pupils:
                lines.append(f"本周每周一见尚有 {len(pupils)} 人未记录")
            if plans:
                lines.append(f"帮扶计划待复核 {len(plans)} 份")
            robot_digest_queue(school_id=school_id, content=f"【每周提醒】{monday:%m月%d日}这一周\n" + "\n".join(lines))
        result[school_id] = {"meetings_missing": len(pupils), "plans_to_review": len(plans)}
    return result


def support_prompts_remind(*, today: datetime.date | None = None) -> dict[int, dict]:
    """Each morning: students who became special with no plan (待建档) to their responsible teacher
    and the school admins; plans flagged for review because a category ended. Each prompt is sent
    once (``support_prompts_raise`` marks it)."""
    today = today or timezone.localdate()
    batch = support_prompts_raise(today=today)
    schools = set(batch.new_plan) | set(batch.review)
    admins = _admins(schools)
    result = {}
    for school_id in schools:
        students, plans = batch.new_plan.get(school_id, []), batch.review.get(school_id, [])
        with transaction.atomic():
            by_teacher: dict[User, list[str]] = defaultdict(list)
            for student in students:
                teacher = responsible_of(student)
                if teacher is not None:
                    by_teacher[teacher].append(student.name)
            for plan in plans:
                teacher = responsible_of(plan.student, plan)
                if teacher is not None:
                    by_teacher[teacher].append(f"{plan.student.name}（待复核）")
            for teacher, names in by_teacher.items():
                notify(
                    users=[teacher],
                    title="特殊学生帮扶：请建档或复核",
                    body=f"{_names(names)}。请建立或复核帮扶计划（一生一策）。",
                    link=reverse("support_mine"),
                    robot=False,
                )
            body = []
            if students:
                body.append(f"待建档 {len(students)} 人：{_names([s.name for s in students])}")
            if plans:
                body.append(f"待复核 {len(plans)} 份：{_names([p.student.name for p in plans])}")
            notify(
                users=admins.get(school_id, []),
                title="特殊学生帮扶：新的待建档或待复核",
                body="；".join(body)[:500],
                link=reverse("support_overview", args=[school_id]) + "?status=no_plan",
                robot=False,
            )
            lines = []
            if students:
                lines.append(f"新增待建立帮扶计划的学生 {len(students)} 人")
            if plans:
                lines.append(f"帮扶计划待复核 {len(plans)} 份")
            robot_digest_queue(school_id=school_id, content=f"【帮扶台账提醒】{today:%m月%d日}\n" + "\n".join(lines))
        result[school_id] = {"new_plan": len(students), "review": len(plans)}
    return result


def group_robot_save(*, school: School, values: dict, acting_user: User) -> GroupRobot:
    """Set the school's group robot (the school admin). A DingTalk robot with 加签 needs its secret;
    saving clears a failing state so that the next digest tries again. Audited (the URL and secret
    are not written to the log: they are the robot's key)."""
    if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != school.pk:
        raise ValidationError("只有本校的学校管理员可以设置群机器人。")
    url = (values.get("url") or "").strip()
    if not url.startswith("https://"):
        raise ValidationError({"url": "Webhook 地址须以 https:// 开头（在群设置—群机器人中复制）。"})
    with transaction.atomic():
        robot = GroupRobot.objects.select_for_update().filter(school=school).first() or GroupRobot(school=school)
        robot.kind = values.get("kind") or GroupRobot.Kind.WECOM
        robot.url = url
        # The secret is never shown again: an empty field keeps the one saved.
        robot.secret = (values.get("secret") or "").strip() or robot.secret
        robot.enabled = bool(values.get("enabled"))
        robot.failing_since = None
        robot.last_error = ""
        robot.full_clean()
        robot.save()
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="visits.GroupRobot",
            object_id=str(robot.pk),
            detail={"kind": robot.kind, "enabled": robot.enabled},
        )
    return robot


def _class_name(student) -> str:
    return student.school_class.name if student.school_class_id else "未分班"


# --- beat jobs ---------------------------------------------------------------------------------


@shared_task(acks_late=True)
def care_asks_evening() -> dict:
    """Beat job (school days' evening, 18:00): the day's missing 每日一问."""
    return {str(k): v for k, v in care_asks_remind().items()}


@shared_task(acks_late=True)
def care_weekly() -> dict:
    """Beat job (Fridays 17:00): missing 每周一见 and plans due for review."""
    return {str(k): v for k, v in care_weekly_remind().items()}


@shared_task(acks_late=True)
def support_prompts_daily() -> dict:
    """Beat job (daily 07:30): students who became special without a plan, and category ends."""
    return {str(k): v for k, v in support_prompts_remind().items()}
