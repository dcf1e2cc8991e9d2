"""The demo county (``seed_demo``): the same seed builds the same county, every number in it is
valid, today lies in a campaign phase, the demo accounts log in, and a build costs the same queries
however many students it writes."""

import datetime
import io
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledgers.models import UnitStatistics, UnitStatisticsDay
from schools.importing import id_number_birth_date, id_number_gender, validate_id_number
from schools.models import (
    AuditEvent,
    Campaign,
    InspectorAssignment,
    Phase,
    Role,
    School,
    SchoolClass,
    SchoolYear,
    TeachingAssignment,
    User,
)
from students.demo import DEMO_PASSWORD, campaign_calendar, demo_county_build, demo_county_reset
from students.models import Category, Guardian, Student, StudentCategory
from tests import factories
from visits.demo import demo_activity_build
from visits.models import Method, Notification, SafetyReport, Suggestion, Visit

pytestmark = pytest.mark.django_db

SMALL = ("--schools", "4", "--students-per-school", "40")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def roster() -> list[tuple[str, str, str]]:
    return list(Student.objects.order_by("student_number").values_list("student_number", "name", "school__name"))


def test_the_same_seed_builds_the_same_county_and_another_seed_a_different_one():
    seed(*SMALL)
    first = roster()
    staff = sorted(User.objects.values_list("username", "real_name"))
    guardians = sorted(Guardian.objects.values_list("student__student_number", "name", "relation", "phone"))
    seed("--reset", *SMALL)
    assert roster() == first
    assert sorted(User.objects.values_list("username", "real_name")) == staff
    assert sorted(Guardian.objects.values_list("student__student_number", "name", "relation", "phone")) == guardians
    seed("--reset", *SMALL, "--seed", "7")
    assert {name for _, name, _ in roster()} != {name for _, name, _ in first}


def test_every_student_number_embeds_a_valid_unique_id_that_agrees_with_the_student():
    seed(*SMALL)
    school_year = SchoolYear.objects.get()
    students = list(Student.objects.select_related("school_class"))
    assert len(students) == 160
    assert len({s.id_number for s in students}) == len(students)
    for student in students:
        assert student.student_number == f"G{student.id_number}"
        assert validate_id_number(student.id_number)
        assert id_number_birth_date(student.id_number) == student.birth_date
        assert id_number_gender(student.id_number) == student.gender
        # Six by August 31 for the first grade: during the school year a child is grade + 5 or + 6.
        end = school_year.end
        age = (
            end.year
            - student.birth_date.year
            - ((end.month, end.day) < (student.birth_date.month, student.birth_date.day))
        )
        assert student.school_class.grade + 5 <= age <= student.school_class.grade + 6
        assert student.address.startswith("示例县")
        assert student.guardians.count() == 1


@pytest.mark.parametrize(
    ("today", "campaign_year", "phase"),
    [
        (datetime.date(2026, 11, 29), 2026, Phase.Kind.REVISIT),
        (datetime.date(2026, 5, 25), 2026, Phase.Kind.PLAN),
        (datetime.date(2027, 7, 15), 2027, Phase.Kind.FULL_ROUND),  # July: the first round runs on
        (datetime.date(2027, 2, 10), 2026, Phase.Kind.SUMMARY),  # before May 20: last year's summary runs on
        (datetime.date(2027, 5, 19), 2026, Phase.Kind.SUMMARY),
    ],
)
def test_today_lies_in_a_phase_of_the_current_campaign(today, campaign_year, phase):
    with time_machine.travel(datetime.datetime.combine(today, datetime.time(9), tzinfo=SHANGHAI), tick=False):
        seed("--schools", "1", "--students-per-school", "6")
        campaign = Campaign.current()
        assert campaign.year == campaign_year
        assert campaign.phase_on(today).kind == phase
        school_year = SchoolYear.current()
        assert school_year.start <= today <= school_year.end
        assert campaign.school_year == school_year
        assert SchoolClass.objects.filter(school_year=school_year).count() == 6
    phases = list(campaign.phases.order_by("start"))
    assert len(phases) == 5
    assert all(earlier.end < later.start for earlier, later in zip(phases, phases[1:], strict=False))


def test_outside_the_gaps_the_calendar_keeps_the_dates_of_the_plan():
    year, phases = campaign_calendar(today=datetime.date(2026, 9, 1))
    assert year == 2026
    assert [(kind, start.isoformat(), end.isoformat()) for kind, start, end in phases] == [
        ("plan", "2026-05-20", "2026-05-31"),
        ("full_round", "2026-06-01", "2026-06-30"),
        ("review", "2026-08-01", "2026-09-30"),
        ("revisit", "2026-10-01", "2026-11-30"),
        ("summary", "2026-12-01", "2026-12-31"),
    ]


def test_each_demo_account_logs_in_with_the_demo_password_and_has_its_role():
    output = seed(*SMALL)
    assert "演示账号（密码均为 demo12345）" in output
    first = School.objects.get(name="城关第一小学")
    users = {}
    for username in ("bureau", "inspector", "zone", "school", "head", "teacher"):
        user = authenticate(username=username, password=DEMO_PASSWORD)
        assert user is not None, username
        assert not user.must_change_password
        assert username in output
        users[username] = user
    assert users["bureau"].role == Role.BUREAU_ADMIN and users["bureau"].is_superuser and users["bureau"].is_staff
    assert users["inspector"].role == Role.INSPECTOR
    inspected = set(InspectorAssignment.objects.filter(inspector=users["inspector"]).values_list("school", flat=True))
    assert first.pk in inspected and len(inspected) == 2
    assert users["zone"].role == Role.ZONE_ADMIN and users["zone"].zone.name == "城关片区" == first.zone.name
    assert users["school"].role == Role.SCHOOL_ADMIN and users["school"].school == first
    assert users["head"].role == Role.TEACHER and users["head"].school == first and users["head"].is_head_teacher
    assert users["teacher"].school == first and not users["teacher"].is_head_teacher
    taught = SchoolClass.objects.filter(assignments__teacher=users["teacher"])
    assert taught.count() == 2 and set(taught.values_list("school", flat=True)) == {first.pk}
    # The other staff log in with their mobile number and the same password.
    other = User.objects.filter(role=Role.TEACHER).exclude(username__in=["head", "teacher"]).first()
    assert len(other.username) == 11 and other.username.isdigit()
    assert authenticate(username=other.username, password=DEMO_PASSWORD) == other


def test_category_shares_are_near_the_county_figures():
    seed("--schools", "3", "--students-per-school", "400")
    total = Student.objects.count()
    shares = Counter(StudentCategory.objects.values_list("category", flat=True))
    bounds = {
        Category.LEFT_BEHIND: (0.10, 0.20),
        Category.MIGRANT: (0.04, 0.12),
        Category.ECONOMIC_HARDSHIP: (0.06, 0.14),
        Category.DISABILITY: (0.003, 0.03),
        Category.LEARNING_DIFFICULTY: (0.025, 0.08),
        Category.MAJOR_CHANGE: (0.005, 0.04),
        Category.PSYCHOLOGICAL: (0.0, 0.03),
        Category.FAMILY_CRISIS: (0.0, 0.02),
        Category.DROPOUT_RISK: (0.0, 0.02),
        Category.ORPHAN: (0.0, 0.01),
        Category.UNSUPPORTED: (0.0, 0.01),
    }
    for category, (low, high) in bounds.items():
        assert low <= shares[category] / total <= high, (category, shares[category], total)
    assert shares[Category.ORPHAN] >= 1 and shares[Category.UNSUPPORTED] >= 1
    boys = Student.objects.filter(gender=Student.Gender.MALE).count()
    assert 0.45 <= boys / total <= 0.55
    disabled = Student.objects.filter(categories__category=Category.DISABILITY)
    assert not disabled.filter(disability_type="").exists()
    assert not Student.objects.exclude(categories__category=Category.DISABILITY).exclude(disability_type="").exists()


def test_the_default_county_has_every_kind_of_school_and_a_second_run_builds_nothing():
    output = seed()
    assert "已生成：3 个片区，8 所学校" in output and "1920 名学生" in output
    kinds = Counter(School.objects.values_list("kind", flat=True))
    assert kinds == {"primary": 4, "junior": 1, "nine_year": 1, "kindergarten": 1, "teaching_point": 1}
    for school in School.objects.all():
        grades = sorted(set(school.classes.values_list("grade", flat=True)))
        expected = {
            "primary": list(range(1, 7)),
            "junior": [7, 8, 9],
            "nine_year": list(range(1, 10)),
            "kindergarten": [-2, -1, 0],
            "teaching_point": [1, 2, 3],
        }[school.kind]
        assert grades == expected, school.name
        assert school.students.count() == 240
        assert school.staff.filter(role=Role.SCHOOL_ADMIN).count() == 1
    assert School.objects.get(kind="teaching_point").classes.count() == 3
    assert not SchoolClass.objects.filter(head_teacher__isnull=True).exists()
    assert not SchoolClass.objects.filter(students__isnull=True).exists()
    assert (
        TeachingAssignment.objects.exclude(subject__in=["语文", "数学", "英语", "科学", "体育", "音乐", "美术"]).count()
        == 0
    )
    assert User.objects.filter(role=Role.ZONE_ADMIN).count() == 3
    assert User.objects.filter(role=Role.INSPECTOR).count() == 3
    assert all(2 <= i.inspector_assignments.count() <= 3 for i in User.objects.filter(role=Role.INSPECTOR))
    for category in (Category.ORPHAN, Category.UNSUPPORTED):
        assert StudentCategory.objects.filter(category=category).exists()
    counts = (School.objects.count(), Student.objects.count(), User.objects.count(), Guardian.objects.count())

    output = seed()
    assert "数据库中已有学校，未生成演示数据" in output
    assert "bureau" in output and "现有：3 个片区，8 所学校" in output
    assert (School.objects.count(), Student.objects.count(), User.objects.count(), Guardian.objects.count()) == counts


def test_reset_rebuilds_the_county_and_keeps_a_superuser_made_by_hand():
    seed(*SMALL)
    installer = User.objects.create_superuser(username="admin", password="x" * 12, role=Role.BUREAU_ADMIN)
    AuditEvent.objects.create(action=AuditEvent.Action.LOGIN, user=User.objects.get(username="head"))
    output = seed("--reset", *SMALL)
    assert "已清空原有数据" in output
    assert User.objects.filter(pk=installer.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN).exists()
    assert Student.objects.count() == 160
    assert Campaign.objects.count() == 1 and SchoolYear.objects.count() == 1


def test_reset_also_deletes_the_visits_filed_in_the_demo():
    seed(*SMALL)
    head = User.objects.get(username="head")
    visit = Visit.objects.create(
        school=head.school, lead_teacher=head, visited_at=timezone.now(), method=Method.IN_HOME
    )
    visit.students.add(head.headed_classes.get().students.first())
    seed("--reset", *SMALL)
    assert not Visit.objects.filter(pk=visit.pk).exists()
    assert Student.objects.count() == 160


def test_reset_refuses_a_database_whose_schools_are_not_the_demo():
    factories.StudentFactory()
    with pytest.raises(CommandError, match="不是演示数据"):
        seed("--reset", *SMALL)
    assert Student.objects.count() == 1


def test_a_build_costs_the_same_queries_for_more_students(sqlite_bulk_limit):
    with CaptureQueriesContext(connection) as small:
        demo_county_build(schools=4, students_per_school=40)
    demo_county_reset()
    with CaptureQueriesContext(connection) as large:
        demo_county_build(schools=4, students_per_school=120)
    assert Student.objects.count() == 480
    assert len(large) == len(small), [query["sql"][:60] for query in large.captured_queries]


# --- the campaign in progress -------------------------------------------------------------------

# The second round has run for seven of its sixty-one days; the first round is long over.
IN_THE_REVISITS = datetime.datetime(2026, 10, 8, 10, 0, tzinfo=SHANGHAI)


def visits_drawn() -> list[tuple]:
    return sorted(
        Visit.objects.values_list(
            "students__student_number", "lead_teacher__username", "visited_at", "method", "phase__kind"
        )
    )


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_the_demo_shows_the_first_round_done_and_the_revisits_under_way():
    output = seed("--schools", "3", "--students-per-school", "300")
    assert "已生成已过阶段的家访记录" in output
    now = timezone.now()
    visits = Visit.objects.all()
    assert visits.exists()
    assert not visits.filter(visited_at__gt=now).exists()
    # Submitted, or sent back by the demo school's review (oversight.demo).
    assert not visits.exclude(status__in=[Visit.Status.SUBMITTED, Visit.Status.RETURNED]).exists()
    # Every visit lies in the phase it names, and only the two visiting rounds have visits.
    for visited_at, start, end, kind in visits.values_list("visited_at", "phase__start", "phase__end", "phase__kind"):
        assert start <= timezone.localtime(visited_at).date() <= end
        assert kind in (Phase.Kind.FULL_ROUND, Phase.Kind.REVISIT)
    # Each school covered 86–99% of its students in the first round.
    first_round = Visit.objects.filter(phase__kind=Phase.Kind.FULL_ROUND)
    for school in School.objects.all():
        students = Student.objects.filter(school=school).count()
        covered = first_round.filter(school=school).values("students").distinct().count()
        assert 0.84 <= covered / students <= 1.0, (school.name, covered, students)
    # A week into a two-month round, a few of the focus students have been revisited, not most.
    focus = Student.objects.filter(categories__isnull=False).distinct()
    revisited = Visit.objects.filter(phase__kind=Phase.Kind.REVISIT).values("students").distinct().count()
    assert 0 < revisited < 0.3 * focus.count()
    # The family's suggestions: some answered on the spot, a few passed to the school and open.
    # The statistics are computed, with a weekly trend since the campaign began.
    county = UnitStatistics.objects.get(level="county", period="campaign")
    assert county.students_total == Student.objects.count() and county.students_visited > 0
    assert UnitStatisticsDay.objects.filter(level="county").count() >= 20
    to_school = Suggestion.objects.filter(to_school=True)
    assert to_school.exists() and not to_school.exclude(reply="").exists()
    assert Suggestion.objects.filter(to_school=False).exclude(reply="").count() > to_school.count()


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_the_demo_school_has_teachers_out_now_and_one_overdue_report_notified_to_its_admin():
    seed(*SMALL)
    school = School.objects.get(name="城关第一小学")
    reports = SafetyReport.objects.filter(school=school)
    assert reports.filter(status=SafetyReport.Status.OUT).count() == 2
    overdue = reports.get(status=SafetyReport.Status.OVERDUE)
    admin = User.objects.get(username="school")
    notification = Notification.objects.exclude(title="督查整改通知").get(user=admin)  # oversight.demo's aside
    assert str(overdue.public_id) in notification.link and overdue.phone in notification.body
    # The history: in-home visits of the last thirty days were each filed under a returned report.
    recent = Visit.objects.filter(method=Method.IN_HOME, visited_at__gte=timezone.now() - datetime.timedelta(days=30))
    assert recent.exists() and not recent.filter(safety_report__isnull=True).exists()
    assert not recent.exclude(safety_report__status=SafetyReport.Status.RETURNED).exists()


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_the_same_seed_files_the_same_visits():
    seed(*SMALL)
    first = visits_drawn()
    assert first
    seed("--reset", *SMALL)
    assert visits_drawn() == first


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_no_visits_builds_the_county_alone():
    seed(*SMALL, "--no-visits")
    assert Student.objects.count() == 160
    assert not Visit.objects.exists() and not SafetyReport.objects.exists()


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_the_visits_cost_the_same_queries_for_more_students(sqlite_bulk_limit):
    counts = []
    for students in (40, 160):
        demo_county_build(schools=4, students_per_school=students)
        with CaptureQueriesContext(connection) as captured:
            demo_activity_build(seed=1)
        counts.append(len(captured))
        demo_county_reset()
    assert counts[0] == counts[1]


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_a_second_round_of_visits_about_doubles_them_for_city_scale_benchmarks():
    seed(*SMALL, "--no-statistics")
    once = Visit.objects.count()
    seed("--reset", *SMALL, "--no-statistics", "--visit-rounds", "2")
    assert 1.8 * once <= Visit.objects.count() <= 2.2 * once
    assert not UnitStatistics.objects.exists()
