"""The statistics engine against an independent count.

Each test builds a random county from a seed (schools, classes, staff, students with categories
that start and end, students who left, classes split, visits submitted and in draft, visits of
siblings in two classes, a teacher who moved school), computes the stored rows, and checks every
figure of every row against a count made here, in Python, straight from the definitions of
DESIGN §7. The count shares no code with the engine.
"""

import datetime
import random
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledgers.models import WHOLE_CAMPAIGN, Level, TeacherStatistics, UnitStatistics, UnitStatisticsDay, rate
from ledgers.statistics import statistics_compute, statistics_history_backfill
from schools.models import SCHOOL_ROLES, Campaign, Phase, Role, School, SchoolClass, SchoolYear, User
from schools.services import account_school_change
from students.models import FOCUS_CATEGORIES, SPECIAL_CATEGORIES, Category, Student, StudentCategory
from tests import factories
from visits.models import Method, SafetyReport, Suggestion, Visit

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime.datetime(2026, 10, 20, 21, 0, tzinfo=SHANGHAI)
TODAY = NOW.date()
FOCUS = set(FOCUS_CATEGORIES)
SPECIAL = set(SPECIAL_CATEGORIES)
CARE = {Category.ORPHAN, Category.UNSUPPORTED}


def _at(day: datetime.date, hour: int = 17) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour), tzinfo=SHANGHAI)


def build_campaign() -> tuple:
    """The 2026 campaign: plan, first round, review (after the summer), revisit round."""
    year, _ = SchoolYear.objects.get_or_create(
        name="2026-2027", defaults={"start": datetime.date(2026, 8, 1), "end": datetime.date(2027, 7, 31)}
    )
    campaign = factories.CampaignFactory(year=2026, school_year=year)
    phases = {
        kind: Phase.objects.get_or_create(campaign=campaign, kind=kind, defaults={"start": start, "end": end})[0]
        for kind, start, end in (
            (Phase.Kind.PLAN, datetime.date(2026, 5, 20), datetime.date(2026, 5, 31)),
            (Phase.Kind.FULL_ROUND, datetime.date(2026, 6, 1), datetime.date(2026, 6, 30)),
            (Phase.Kind.REVIEW, datetime.date(2026, 8, 1), datetime.date(2026, 9, 30)),
            (Phase.Kind.REVISIT, datetime.date(2026, 10, 1), datetime.date(2026, 11, 30)),
        )
    }
    return year, campaign, phases


def build_county(seed: int, *, schools: int = 4) -> dict:
    """A random county; returns the campaign and its phases."""
    rng = random.Random(seed)
    year, campaign, phases = build_campaign()
    zones = [factories.ZoneFactory(code=f"Z{seed}{i}", name=f"片区{seed}-{i}") for i in range(2)]
    all_schools = []
    for s in range(schools):
        school = factories.SchoolFactory(zone=zones[s % 2], name=f"学校{seed}-{s}", code=f"S{seed}{s:03d}")
        all_schools.append(school)
        staff = [factories.UserFactory(school=school) for _ in range(rng.randint(3, 6))]
        staff.append(factories.UserFactory(school=school, role=Role.SCHOOL_ADMIN))
        if rng.random() < 0.5:
            staff.append(factories.UserFactory(school=school, is_active=False))  # left: not on the roster
        classes = []
        for c in range(rng.randint(1, 3)):
            head = rng.choice(staff[:-1]) if rng.random() < 0.8 else None
            school_class = factories.SchoolClassFactory(
                school=school, school_year=year, grade=3 + c, number=1, head_teacher=head
            )
            for teacher in rng.sample(staff, rng.randint(0, 2)):
                factories.TeachingAssignmentFactory(teacher=teacher, school_class=school_class)
            classes.append(school_class)
        students = []
        for school_class in classes:
            for _ in range(rng.randint(0, 8)):
                student = factories.StudentFactory(school_class=school_class)
                students.append(student)
                for code in rng.sample(list(Category.values), rng.choice((0, 0, 0, 1, 1, 2))):
                    start = TODAY - datetime.timedelta(days=rng.choice((100, 40, 5, -3)))  # -3: not yet in force
                    end = rng.choice((None, None, TODAY, TODAY - datetime.timedelta(days=1)))  # ended yesterday
                    end = end if end is None or end >= start else None
                    factories.StudentCategoryFactory(student=student, category=code, start=start, end=end)
        for student in students:
            if rng.random() < 0.08:
                student.status = Student.Status.LEFT
                student.save()
        if len(classes) > 1 and students:
            moved = rng.choice(students)  # a class split: the student is now in another class
            moved.school_class = classes[-1]
            moved.save()
        for _ in range(rng.randint(0, 14)):
            if not students:
                break
            kind = rng.choice((Phase.Kind.FULL_ROUND, Phase.Kind.REVISIT, Phase.Kind.REVIEW, None))
            if kind is None:
                day, phase = datetime.date(2026, 7, 10), None  # between phases: in no period
            else:
                phase = phases[kind]
                last = min(phase.end, TODAY)
                day = phase.start + datetime.timedelta(days=rng.randint(0, (last - phase.start).days))
            visit = Visit.objects.create(
                school=school,
                lead_teacher=rng.choice(staff),
                visited_at=_at(day),
                phase=phase,
                method=rng.choice(Method.values),
                status=Visit.Status.SUBMITTED if rng.random() < 0.85 else Visit.Status.DRAFT,
            )
            visit.students.set(rng.sample(students, min(len(students), rng.choice((1, 1, 1, 2)))))
            others = [u for u in staff if u.pk != visit.lead_teacher_id]
            visit.companions.set(rng.sample(others, min(len(others), rng.choice((0, 0, 1, 2)))))
            if rng.random() < 0.3:
                Suggestion.objects.create(visit=visit, text="意见", to_school=rng.random() < 0.5, reply="答复")
        for _ in range(rng.randint(0, 3)):
            start = _at(rng.choice((datetime.date(2026, 6, 10), datetime.date(2026, 10, 5))), 15)
            SafetyReport.objects.create(
                school=school,
                teacher=rng.choice(staff),
                address="家中",
                planned_start=start,
                expected_minutes=60,
                phone="13800000000",
                due_at=start + datetime.timedelta(minutes=90),
                status=SafetyReport.Status.OVERDUE if rng.random() < 0.6 else SafetyReport.Status.RETURNED,
                overdue_notified_at=start + datetime.timedelta(minutes=95) if rng.random() < 0.6 else None,
            )
    # A teacher who visited in the first school has since moved to the last one (through the
    # service: their head-teacher and teaching assignments at the first school end).
    mover = User.objects.filter(school__in=all_schools[:1], role=Role.TEACHER, is_active=True).first()
    if mover and len(all_schools) > 1:
        account_school_change(user=mover, school=all_schools[-1], acting_user=mover)
    return {"campaign": campaign, "phases": phases}


# --- the independent count -----------------------------------------------------------------------


def in_force(student: Student) -> set[str]:
    return {
        c.category
        for c in StudentCategory.objects.filter(student=student)
        if c.start <= TODAY and (c.end is None or c.end >= TODAY)
    }


def expected_rows(campaign, phases) -> dict[tuple[str, str, int], dict]:
    """Every row's figures, counted one object at a time."""
    phases = {p.kind: p for p in Phase.objects.filter(campaign=campaign)}  # as edited since
    # A period is a range of local days: a phase's dates, or the whole campaign from the first
    # phase's start to the last one's end, the days between phases included (DESIGN §1, §7).
    periods = {WHOLE_CAMPAIGN: (min(p.start for p in phases.values()), max(p.end for p in phases.values()))}
    periods |= {kind: (phase.start, phase.end) for kind, phase in phases.items()}

    def day_of(visit) -> datetime.date:
        return timezone.localtime(visit.visited_at).date()

    students = list(Student.objects.filter(status=Student.Status.ACTIVE))
    categories = {s.pk: in_force(s) for s in students}
    submitted = list(Visit.objects.filter(status=Visit.Status.SUBMITTED).prefetch_related("students", "companions"))
    staff = list(User.objects.filter(is_active=True, role__in=SCHOOL_ROLES))
    year = campaign.school_year

    def people(visit):
        return {visit.lead_teacher_id} | {u.pk for u in visit.companions.all()}

    def in_home_this_year(student):
        return sum(
            1
            for v in submitted
            if v.method == Method.IN_HOME
            and year.start <= timezone.localtime(v.visited_at).date() <= year.end
            and student.pk in {s.pk for s in v.students.all()}
        )

    rows = {}
    units = []
    for school in School.objects.all():
        units.append((Level.SCHOOL, school.pk, [s for s in students if s.school_id == school.pk], school))
        for school_class in SchoolClass.objects.filter(school=school):
            units.append(
                (
                    Level.CLASS,
                    school_class.pk,
                    [s for s in students if s.school_class_id == school_class.pk],
                    school_class,
                )
            )
    for level, unit_id, unit_students, unit in units:
        if level == Level.SCHOOL:
            unit_staff = {u.pk for u in staff if u.school_id == unit.pk}
        else:
            heads = {unit.head_teacher_id} if unit.head_teacher_id else set()
            assigned = set(unit.assignments.values_list("teacher_id", flat=True))
            unit_staff = {pk for pk in heads | assigned if any(u.pk == pk for u in staff)}
        ids = {s.pk for s in unit_students}
        for code, (first, last) in periods.items():
            visits_in = [v for v in submitted if first <= day_of(v) <= last]
            visited = {s.pk for v in visits_in for s in v.students.all()} & ids
            revisit = code == Phase.Kind.REVISIT
            required = {pk for pk in ids if categories[pk] & (FOCUS | SPECIAL)} if revisit else ids
            if level == Level.SCHOOL:
                took_part = {pk for v in visits_in for pk in people(v)} & unit_staff
                unit_visits = [v for v in visits_in if v.school_id == unit.pk]
            else:
                took_part = {pk for v in visits_in if {s.pk for s in v.students.all()} & ids for pk in people(v)}
                took_part &= unit_staff
                unit_visits = [v for v in visits_in if {s.pk for s in v.students.all()} & ids]
            focus = {pk for pk in ids if categories[pk] & FOCUS}
            special = {pk for pk in ids if categories[pk] & SPECIAL}
            figures = {
                "staff_total": len(unit_staff),
                "teachers_participating": len(took_part),
                "students_required": len(required),
                "students_visited": len(visited & required),
                "students_total": len(ids),
                "visits": len(unit_visits),
                "in_home_visits": sum(1 for v in unit_visits if v.method == Method.IN_HOME),
                "focus_students": len(focus),
                "focus_visited": len(focus & visited),
                "special_students": len(special),
                "special_meeting_rule": sum(1 for s in unit_students if s.pk in special and in_home_this_year(s) >= 2),
                "care_students": sum(1 for pk in ids if categories[pk] & CARE),
                "categories": {
                    c: [sum(1 for pk in ids if c in categories[pk]), sum(1 for pk in visited if c in categories[pk])]
                    for c in Category.values
                },
            }
            if level == Level.SCHOOL:
                figures["open_feedback"] = Suggestion.objects.filter(to_school=True, visit__in=unit_visits).count()
                figures["overdue_safety_reports"] = sum(
                    1
                    for r in SafetyReport.objects.filter(school=unit, overdue_notified_at__isnull=False)
                    if first <= timezone.localtime(r.planned_start).date() <= last
                )
            rows[(level, code, unit_id)] = figures
    # Zones and the county: straight from the objects again, not summed from the school rows.
    for code, (first, last) in periods.items():
        for zone_id in set(School.objects.values_list("zone_id", flat=True)):
            rows[(Level.ZONE, code, zone_id)] = _sum_by(
                rows, code, {s.pk for s in School.objects.filter(zone_id=zone_id)}
            )
        rows[(Level.COUNTY, code, 0)] = _sum_by(rows, code, set(School.objects.values_list("pk", flat=True)))
        # Distinct teachers over the zone, counted from the visits themselves.
        visits_in = [v for v in submitted if first <= day_of(v) <= last]
        everyone = {pk for v in visits_in for pk in people(v)} & {u.pk for u in staff}
        assert rows[(Level.COUNTY, code, 0)]["teachers_participating"] == len(everyone)
    return rows


def _sum_by(rows, code, school_ids) -> dict:
    total: dict = defaultdict(int)
    total["categories"] = {c: [0, 0] for c in Category.values}
    for (level, period, unit_id), figures in rows.items():
        if level == Level.SCHOOL and period == code and unit_id in school_ids:
            for name, value in figures.items():
                if name == "categories":
                    for c, (n, m) in value.items():
                        total["categories"][c][0] += n
                        total["categories"][c][1] += m
                else:
                    total[name] += value
    return dict(total)


def in_campaign(campaign) -> set[int]:
    """Ids of the visits dated from the first phase's start to the last phase's end (local days)."""
    phases = list(Phase.objects.filter(campaign=campaign))
    first, last = min(p.start for p in phases), max(p.end for p in phases)
    return {v.pk for v in Visit.objects.all() if first <= timezone.localtime(v.visited_at).date() <= last}


def stored(level, code, unit_id) -> UnitStatistics:
    return UnitStatistics.objects.get(level=level, period=code, unit_id=unit_id)


def assert_every_row_matches(expected: dict) -> None:
    assert UnitStatistics.objects.count() == len(expected)
    for (level, code, unit_id), figures in expected.items():
        row = stored(level, code, unit_id)
        for name, value in figures.items():
            assert getattr(row, name) == value, (level, code, row.name, name)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@time_machine.travel(NOW, tick=False)
def test_every_stored_figure_equals_an_independent_count(seed):
    county = build_county(seed)

    statistics_compute(campaign=county["campaign"])

    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_running_twice_or_refreshing_one_school_changes_nothing():
    county = build_county(11)
    campaign = county["campaign"]
    statistics_compute(campaign=campaign)
    first = sorted(UnitStatistics.objects.values_list("level", "period", "unit_id", "students_visited", "visits"))

    statistics_compute(campaign=campaign)
    statistics_compute(campaign=campaign, school_ids=[School.objects.first().pk])

    assert (
        sorted(UnitStatistics.objects.values_list("level", "period", "unit_id", "students_visited", "visits")) == first
    )
    assert_every_row_matches(expected_rows(campaign, county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_a_school_refresh_brings_its_rows_zone_and_county_up_to_date():
    county = build_county(12)
    campaign = county["campaign"]
    statistics_compute(campaign=campaign)
    school = School.objects.order_by("pk").first()
    student = factories.StudentFactory(school_class=SchoolClass.objects.filter(school=school).first())
    teacher = User.objects.filter(school=school, role=Role.TEACHER, is_active=True).first()
    visit = Visit.objects.create(
        school=school,
        lead_teacher=teacher,
        visited_at=_at(datetime.date(2026, 6, 15)),
        phase=county["phases"][Phase.Kind.FULL_ROUND],
        method=Method.PHONE,
        status=Visit.Status.SUBMITTED,
    )
    visit.students.set([student])

    statistics_compute(campaign=campaign, school_ids=[school.pk])

    assert_every_row_matches(expected_rows(campaign, county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_drafts_leavers_and_ended_categories_never_count():
    campaign = factories.CampaignFactory(year=2026)
    phase = factories.PhaseFactory(
        campaign=campaign, kind=Phase.Kind.REVISIT, start=datetime.date(2026, 10, 1), end=datetime.date(2026, 11, 30)
    )
    school_class = factories.SchoolClassFactory()
    teacher = factories.UserFactory(school=school_class.school)
    stayed, left = (
        factories.StudentFactory(school_class=school_class),
        factories.StudentFactory(school_class=school_class),
    )
    left.status = Student.Status.LEFT
    left.save()
    factories.StudentCategoryFactory(
        student=stayed, category=Category.FAMILY_CRISIS, end=TODAY - datetime.timedelta(days=1)
    )
    draft = Visit.objects.create(
        school=school_class.school, lead_teacher=teacher, visited_at=_at(TODAY), phase=phase, method=Method.IN_HOME
    )
    draft.students.set([stayed, left])

    statistics_compute(campaign=campaign)

    row = stored(Level.SCHOOL, Phase.Kind.REVISIT, school_class.school_id)
    assert (row.students_total, row.students_required, row.students_visited) == (1, 0, 0)
    assert (row.teachers_participating, row.visits, row.special_students) == (0, 0, 0)
    assert row.categories[Category.FAMILY_CRISIS] == [0, 0]
    assert row.coverage_rate is None and rate(0, 0) is None  # shown 「—」


@time_machine.travel(NOW, tick=False)
def test_the_teacher_figures_count_their_own_students_and_records():
    county = build_county(21, schools=2)
    campaign = county["campaign"]
    statistics_compute(campaign=campaign)
    for row in TeacherStatistics.objects.filter(period=WHOLE_CAMPAIGN).select_related("teacher"):
        teacher = row.teacher
        classes = set(SchoolClass.objects.filter(head_teacher=teacher).values_list("pk", flat=True))
        classes |= set(teacher.assignments.values_list("school_class_id", flat=True))
        own = set(
            Student.objects.filter(school_class_id__in=classes, status=Student.Status.ACTIVE).values_list(
                "pk", flat=True
            )
        )
        took_part = Visit.objects.filter(status=Visit.Status.SUBMITTED, pk__in=in_campaign(campaign)).filter(
            pk__in=set(teacher.led_visits.values_list("pk", flat=True))
            | set(teacher.joined_visits.values_list("pk", flat=True))
        )
        visited = set(took_part.values_list("students", flat=True)) & own
        assert row.students_assigned == len(own), teacher
        assert row.students_visited == len(visited), teacher
        assert row.visits == took_part.count()
        assert row.in_home_visits == took_part.filter(method=Method.IN_HOME).count()
        assert row.records_complete == took_part.filter(lead_teacher=teacher).count()
        assert row.records_draft == teacher.led_visits.filter(status=Visit.Status.DRAFT).count()
    assert (
        TeacherStatistics.objects.filter(period=WHOLE_CAMPAIGN).count()
        == User.objects.filter(is_active=True, role__in=SCHOOL_ROLES).count()
    )


@time_machine.travel(NOW, tick=False)
def test_the_day_is_kept_in_the_history_once_however_often_it_is_computed():
    county = build_county(31, schools=2)
    statistics_compute(campaign=county["campaign"])
    statistics_compute(campaign=county["campaign"])
    county_day = UnitStatisticsDay.objects.get(level=Level.COUNTY, day=TODAY)
    county_row = stored(Level.COUNTY, WHOLE_CAMPAIGN, 0)
    assert county_day.students_visited == county_row.students_visited
    assert UnitStatisticsDay.objects.filter(level=Level.SCHOOL, day=TODAY).count() == 2


@time_machine.travel(NOW, tick=False)
def test_the_computation_takes_the_same_queries_for_two_schools_or_eight(sqlite_bulk_limit):
    counts = []
    for seed, schools in ((41, 2), (42, 8)):
        county = build_county(seed, schools=schools)
        campaign = Campaign.objects.get(pk=county["campaign"].pk)  # as a task loads it: nothing cached
        with CaptureQueriesContext(connection) as captured:
            statistics_compute(campaign=campaign)
        counts.append(len(captured))
        UnitStatistics.objects.all().delete()
    assert counts[0] == counts[1]


@time_machine.travel(NOW, tick=False)
def test_the_history_backfill_counts_only_the_visits_made_by_each_day():
    county = build_county(61, schools=3)
    campaign = county["campaign"]
    day = datetime.date(2026, 6, 15)

    statistics_history_backfill(campaign=campaign, days=[day])

    before = [
        v
        for v in Visit.objects.filter(status=Visit.Status.SUBMITTED, pk__in=in_campaign(campaign))
        if timezone.localtime(v.visited_at).date() <= day
    ]
    active = set(Student.objects.filter(status=Student.Status.ACTIVE).values_list("pk", flat=True))
    staff = set(User.objects.filter(is_active=True, role__in=SCHOOL_ROLES).values_list("pk", flat=True))
    visited = {s.pk for v in before for s in v.students.all()} & active
    took_part = {pk for v in before for pk in [v.lead_teacher_id, *v.companions.values_list("pk", flat=True)]} & staff
    row = UnitStatisticsDay.objects.get(level=Level.COUNTY, day=day)
    assert (row.students_visited, row.students_required) == (len(visited), len(active))
    assert (row.teachers_participating, row.staff_total) == (len(took_part), len(staff))
    assert UnitStatisticsDay.objects.filter(day=day, level=Level.SCHOOL).count() == 3


# --- the cases of issue 8: the campaign changes under filed visits ---------------------------------


def small_county() -> dict:
    """School A: class A1 (head T1, teacher T3; students a1, a2) and class A2 (head T2; student b1);
    school B. Visits filed as a teacher files them (the phase stored at submission):
    T1 → a1 on 15 June and T2 → a2 on 25 June (first round); T3 → b1 on 10 July (between phases).
    T2 heads A2 but visited only a student of A1; T3 teaches A1 but visited only a student of A2."""
    from visits.services import phase_on

    year, campaign, phases = build_campaign()
    county = {"campaign": campaign, "phases": phases}
    zone = factories.ZoneFactory(code="ZS", name="小片区")
    school_a = factories.SchoolFactory(zone=zone, name="甲校", code="SA")
    school_b = factories.SchoolFactory(zone=zone, name="乙校", code="SB")
    t1, t2, t3 = (factories.UserFactory(school=school_a, real_name=name) for name in ("T1", "T2", "T3"))
    factories.UserFactory(school=school_b)
    a1_class = factories.SchoolClassFactory(school=school_a, school_year=year, grade=3, number=1, head_teacher=t1)
    a2_class = factories.SchoolClassFactory(school=school_a, school_year=year, grade=3, number=2, head_teacher=t2)
    factories.TeachingAssignmentFactory(teacher=t3, school_class=a1_class)
    a1, a2 = factories.StudentFactory(school_class=a1_class), factories.StudentFactory(school_class=a1_class)
    b1 = factories.StudentFactory(school_class=a2_class)
    for teacher, student, day in (
        (t1, a1, datetime.date(2026, 6, 15)),
        (t2, a2, datetime.date(2026, 6, 25)),
        (t3, b1, datetime.date(2026, 7, 10)),
    ):
        visit = Visit.objects.create(
            school=school_a,
            lead_teacher=teacher,
            visited_at=_at(day),
            phase=phase_on(day),
            method=Method.PHONE,
            status=Visit.Status.SUBMITTED,
        )
        visit.students.set([student])
    return {**county, "a": school_a, "b": school_b, "a1": a1_class, "a2": a2_class, "t1": t1}


def figures(level, code, unit_id) -> tuple[int, int, int, int]:
    """(参与家访教师数量, staff, 已走访人数, 家访学生数量) of a stored row."""
    row = stored(level, code, unit_id)
    return (row.teachers_participating, row.staff_total, row.students_visited, row.students_required)


@time_machine.travel(NOW, tick=False)
def test_visits_between_phases_count_in_the_whole_campaign_and_in_no_phase():
    county = small_county()
    statistics_compute(campaign=county["campaign"])

    a = county["a"].pk
    assert figures(Level.SCHOOL, WHOLE_CAMPAIGN, a) == (3, 3, 3, 3)  # the July visit counts in 全年
    assert figures(Level.SCHOOL, Phase.Kind.FULL_ROUND, a) == (2, 3, 2, 3)
    assert figures(Level.SCHOOL, Phase.Kind.REVIEW, a) == (0, 3, 0, 3)  # July is in no phase
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_moving_a_phase_s_dates_moves_the_visits_already_filed_and_their_figures():
    from visits.services import phase_dates_update

    county = small_county()
    campaign, a = county["campaign"], county["a"].pk
    statistics_compute(campaign=campaign)
    assert figures(Level.SCHOOL, Phase.Kind.FULL_ROUND, a) == (2, 3, 2, 3)
    full_round = county["phases"][Phase.Kind.FULL_ROUND]

    phase_dates_update(
        phase=full_round, start=full_round.start, end=datetime.date(2026, 7, 10), acting_user=county["t1"]
    )
    assert School.objects.filter(statistics_stale_since__isnull=True).count() == 0  # every school asked for
    statistics_compute(campaign=campaign)

    assert figures(Level.SCHOOL, Phase.Kind.FULL_ROUND, a) == (3, 3, 3, 3)  # the 10 July visit moved in
    assert figures(Level.COUNTY, Phase.Kind.FULL_ROUND, 0)[:3] == (3, 4, 3)
    assert Visit.objects.filter(phase=full_round).count() == 3  # the stored phase follows for the lists
    assert_every_row_matches(expected_rows(campaign, county["phases"]))

    # Shrinking it again moves them out; dates that overlap another phase change nothing.
    phase_dates_update(
        phase=full_round, start=full_round.start, end=datetime.date(2026, 6, 20), acting_user=county["t1"]
    )
    with pytest.raises(ValidationError):
        phase_dates_update(
            phase=full_round, start=full_round.start, end=datetime.date(2026, 8, 5), acting_user=county["t1"]
        )
    statistics_compute(campaign=campaign)
    assert figures(Level.SCHOOL, Phase.Kind.FULL_ROUND, a) == (1, 3, 1, 3)
    assert Phase.objects.get(pk=full_round.pk).end == datetime.date(2026, 6, 20)
    assert_every_row_matches(expected_rows(campaign, county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_a_class_counts_only_its_own_teachers_who_visited_its_own_students():
    county = small_county()
    statistics_compute(campaign=county["campaign"])

    # A1's staff are T1 and T3; T3 visited only A2's student: only T1 counts.
    assert figures(Level.CLASS, WHOLE_CAMPAIGN, county["a1"].pk) == (1, 2, 2, 2)
    # A2's only teacher, T2, visited only A1's student: none of its teachers took part, though its
    # student was visited (by T3, who is not A2's teacher).
    assert figures(Level.CLASS, WHOLE_CAMPAIGN, county["a2"].pk) == (0, 1, 1, 1)
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_a_teacher_moved_to_another_school_leaves_the_old_classes_and_counts_in_the_new_school():
    county = small_county()
    campaign, t1 = county["campaign"], county["t1"]
    statistics_compute(campaign=campaign)
    assert figures(Level.CLASS, WHOLE_CAMPAIGN, county["a1"].pk) == (1, 2, 2, 2)

    account_school_change(user=t1, school=county["b"], acting_user=t1)
    statistics_compute(campaign=campaign)

    assert SchoolClass.objects.get(pk=county["a1"].pk).head_teacher is None
    assert figures(Level.CLASS, WHOLE_CAMPAIGN, county["a1"].pk) == (0, 1, 2, 2)  # T3 only: visited elsewhere
    assert figures(Level.SCHOOL, WHOLE_CAMPAIGN, county["a"].pk) == (2, 2, 3, 3)
    assert figures(Level.SCHOOL, WHOLE_CAMPAIGN, county["b"].pk) == (1, 2, 0, 0)  # T1 took part this campaign
    assert_every_row_matches(expected_rows(campaign, county["phases"]))


# --- one rule, one place: 「我的学生」 and the statistics count the same students ----------------


@pytest.mark.parametrize("seed", [81, 82, 83])
@pytest.mark.parametrize(
    "day",
    [
        datetime.datetime(2026, 6, 20, 21, 0, tzinfo=SHANGHAI),  # first round: the whole campaign counts
        datetime.datetime(2026, 7, 10, 21, 0, tzinfo=SHANGHAI),  # between phases
        NOW,  # revisit round: the round itself for focus and special students
    ],
)
def test_the_my_students_status_marks_visited_exactly_the_students_the_class_row_counts(seed, day):
    from visits.selectors import Period, VisitStatus, student_statuses

    with time_machine.travel(NOW, tick=False):
        county = build_county(seed)
    with time_machine.travel(day, tick=False):
        statistics_compute(campaign=county["campaign"])
        period = Period.on(day.date())
        revisit_round = period.phase is not None and period.phase.kind == Phase.Kind.REVISIT
        for school_class in SchoolClass.objects.all():
            students = list(
                Student.objects.filter(school_class=school_class, status=Student.Status.ACTIVE).prefetch_related(
                    "categories"
                )
            )
            rows = student_statuses(students, period=period)
            required = [r for r in rows if set(r.categories) & (FOCUS | SPECIAL)] if revisit_round else rows
            row = stored(Level.CLASS, period.phase.kind if revisit_round else WHOLE_CAMPAIGN, school_class.pk)

            assert sum(r.visited for r in required) == row.students_visited, school_class
            assert len(required) == row.students_required
            assert sum(r.is_special and r.in_home >= 2 for r in rows) == row.special_meeting_rule
            for r in rows:  # the label says what ``visited`` says, unless a special student needs more
                assert r.status == (
                    VisitStatus.NEEDS_REVISIT
                    if r.is_special and r.visits and r.in_home < 2
                    else VisitStatus.VISITED
                    if r.visited
                    else VisitStatus.NOT_VISITED
                )
