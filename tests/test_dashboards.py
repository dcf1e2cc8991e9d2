"""The statistics dashboards and the teacher assessment: who may open which page, what they show,
and that they read only the stored aggregates in a fixed number of queries.

Statistics rows are made here directly (``StatsBuilder``), so that the pages are tested apart from
the engine; one test at the end runs the engine and reads its rows through the pages.
"""

import datetime
import io
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.db.models import FloatField
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ledgers.models import WHOLE_CAMPAIGN, Level, TeacherStatistics, UnitStatistics, UnitStatisticsDay
from ledgers.selectors import expected_coverage
from ledgers.views.dashboards import TEACHER_COLUMNS, UnitTargets, sort_items
from schools.models import AuditEvent, Campaign, Phase, School, SchoolClass, User, Zone
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Day 16 of a 30-day full round with a 90% target: 16/30 × 90 = 48.0% expected by tonight.
NOW = datetime.datetime(2026, 6, 16, 10, 0, tzinfo=SHANGHAI)
TODAY = NOW.date()
EXPECTED_TODAY = "48.0%"
FULL = Phase.Kind.FULL_ROUND


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


# --- the rows -----------------------------------------------------------------------------------


class StatsBuilder:
    """Makes stored statistics rows for one campaign, as the engine would leave them."""

    def __init__(self, campaign: Campaign):
        self.campaign = campaign

    def unit(self, level: str, unit_id: int = 0, *, periods=(WHOLE_CAMPAIGN, FULL), **values) -> UnitStatistics:
        values.setdefault("computed_at", timezone.now())
        rows = [
            UnitStatistics.objects.create(campaign=self.campaign, period=period, level=level, unit_id=unit_id, **values)
            for period in periods
        ]
        return rows[0]

    def county(self, **figures) -> UnitStatistics:
        return self.unit(Level.COUNTY, 0, name="全县", **figures)

    def zone(self, zone: Zone, **figures) -> UnitStatistics:
        return self.unit(Level.ZONE, zone.pk, name=zone.name, zone=zone, sort_key=zone.code, **figures)

    def school(self, school: School, **figures) -> UnitStatistics:
        return self.unit(
            Level.SCHOOL, school.pk, name=school.name, zone=school.zone, school=school, sort_key=school.code, **figures
        )

    def school_class(self, school_class: SchoolClass, **figures) -> UnitStatistics:
        return self.unit(
            Level.CLASS,
            school_class.pk,
            name=school_class.name,
            zone=school_class.school.zone,
            school=school_class.school,
            sort_key=f"{school_class.grade:02d}{school_class.number:03d}",
            **figures,
        )

    def teacher(self, teacher: User, *, periods=(WHOLE_CAMPAIGN, FULL), **figures) -> TeacherStatistics:
        rows = [
            TeacherStatistics.objects.create(
                campaign=self.campaign,
                period=period,
                teacher=teacher,
                school=teacher.school,
                computed_at=timezone.now(),
                **figures,
            )
            for period in periods
        ]
        return rows[0]

    def days(self, level: str, unit_id: int, *, required: int, visited_per_day: int, staff: int = 10) -> None:
        start = datetime.date(2026, 6, 1)
        for index in range((TODAY - start).days + 1):
            UnitStatisticsDay.objects.create(
                campaign=self.campaign,
                level=level,
                unit_id=unit_id,
                day=start + datetime.timedelta(days=index),
                staff_total=staff,
                teachers_participating=min(staff, index),
                students_required=required,
                students_visited=min(required, visited_per_day * (index + 1)),
            )


def make_campaign(target: int = 90) -> Campaign:
    campaign = factories.CampaignFactory(year=2026, coverage_target=target)
    for kind, start, end in (
        (Phase.Kind.PLAN, datetime.date(2026, 5, 20), datetime.date(2026, 5, 31)),
        (FULL, datetime.date(2026, 6, 1), datetime.date(2026, 6, 30)),
        (Phase.Kind.REVIEW, datetime.date(2026, 8, 1), datetime.date(2026, 9, 30)),
        (Phase.Kind.REVISIT, datetime.date(2026, 10, 1), datetime.date(2026, 11, 30)),
    ):
        factories.PhaseFactory(campaign=campaign, kind=kind, start=start, end=end)
    return campaign


@pytest.fixture
def stats(world) -> StatsBuilder:
    """The world's county computed: its school at 75.0% coverage (ahead of today's 48.0%), the
    other school at 20.0% (behind); no special students anywhere, so that rate shows 「—」."""
    build = StatsBuilder(make_campaign())
    build.county(
        staff_total=15,
        teachers_participating=9,
        students_required=300,
        students_visited=170,
        students_total=300,
        visits=210,
        in_home_visits=120,
        focus_students=30,
        focus_visited=15,
        care_students=2,
        care_asks_due=40,
        care_asks_done=37,
        care_meetings_due=8,
        care_meetings_done=6,
        open_feedback=3,
        overdue_safety_reports=1,
        categories={"left_behind": [12, 6], "economic_hardship": [18, 9]},
    )
    figures = {
        "school": {"staff_total": 10, "teachers_participating": 4, "students_required": 200, "students_visited": 150},
        "other": {"staff_total": 5, "teachers_participating": 5, "students_required": 100, "students_visited": 20},
    }
    build.zone(world.school.zone, students_total=200, **figures["school"])
    build.zone(world.other_school.zone, students_total=100, **figures["other"])
    build.school(world.school, students_total=200, visits=160, **figures["school"])
    build.school(world.other_school, students_total=100, visits=50, **figures["other"])
    build.school_class(
        world.school_class, staff_total=2, teachers_participating=2, students_required=120, students_visited=100
    )
    build.school_class(world.plain_class, students_required=80, students_visited=50)
    build.school_class(world.other_class, students_required=100, students_visited=20)
    build.teacher(
        world.teacher,
        students_assigned=40,
        students_visited=30,
        visits=12,
        in_home_visits=8,
        records_complete=10,
        records_draft=2,
    )
    build.teacher(
        world.head_teacher, students_assigned=40, students_visited=10, visits=4, in_home_visits=1, records_complete=4
    )
    build.teacher(world.school_admin)
    build.teacher(world.other_teacher, students_assigned=50, students_visited=20)
    build.days(Level.COUNTY, 0, required=300, visited_per_day=10)
    build.days(Level.ZONE, world.school.zone.pk, required=200, visited_per_day=9)
    build.days(Level.SCHOOL, world.school.pk, required=200, visited_per_day=9)
    return build


def urls(world) -> dict[str, str]:
    return {
        "county": reverse("statistics_county"),
        "zone": reverse("statistics_zone", args=[world.school.zone.pk]),
        "school": reverse("statistics_school", args=[world.school.pk]),
        "class": reverse("statistics_class", args=[world.school.pk, world.school_class.pk]),
        "teachers": reverse("teacher_assessment", args=[world.school.pk]),
        "teachers_xlsx": reverse("teacher_assessment_xlsx", args=[world.school.pk]),
    }


def names(table) -> list[str]:
    return [line.name for line in table.lines]


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# --- who may open what ----------------------------------------------------------------------------

ALL_404 = dict.fromkeys(("county", "zone", "school", "class", "teachers", "teachers_xlsx"), 404)
ALL_200 = dict.fromkeys(ALL_404, 200)
EXPECTED_STATUS = {
    "teacher": ALL_404,
    "head_teacher": ALL_404,
    "other_teacher": ALL_404,
    "school_admin": {**ALL_200, "county": 302, "zone": 404},
    "other_admin": {**ALL_404, "county": 302},
    "zone_admin": {**ALL_200, "county": 302},
    "inspector": ALL_200,
    "bureau_admin": ALL_200,
}
CASES = [(role, name, status) for role, by_url in EXPECTED_STATUS.items() for name, status in by_url.items()]


@pytest.mark.parametrize(("role", "name", "status"), CASES)
def test_every_statistics_url_answers_each_role_as_its_scope_says(world, stats, login, role, name, status):
    user = world.users()[role]
    response = login(user).get(urls(world)[name])
    assert response.status_code == status
    denied = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED, user=user)
    assert denied.exists() == (status == 404)


@pytest.mark.parametrize(("role", "name", "status"), CASES)
def test_before_any_computation_the_same_scope_holds(world, login, role, name, status):
    make_campaign()  # no statistics rows at all
    user = world.users()[role]
    response = login(user).get(urls(world)[name])
    assert response.status_code == status
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED, user=user).exists() == (status == 404)


def test_an_anonymous_visitor_is_sent_to_log_in(world, client):
    for url in urls(world).values():
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url


def test_zone_and_school_admins_are_sent_to_their_own_page_keeping_the_period(world, stats, login):
    response = login(world.zone_admin).get(reverse("statistics_county"), {"period": FULL})
    assert response.url == reverse("statistics_zone", args=[world.school.zone.pk]) + f"?period={FULL}"
    response = login(world.school_admin).get(reverse("statistics_county"))
    assert response.url == reverse("statistics_school", args=[world.school.pk])


def test_a_class_of_another_school_is_not_reached_through_this_schools_url(world, stats, login):
    url = reverse("statistics_class", args=[world.school.pk, world.other_class.pk])
    assert login(world.bureau_admin).get(url).status_code == 404
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED, user=world.bureau_admin).exists()


# --- what the pages show --------------------------------------------------------------------------


def test_the_county_dashboard_shows_the_headline_figures_and_a_dash_for_zero_denominators(world, stats, login):
    response = login(world.bureau_admin).get(reverse("statistics_county"))
    html = page(response)
    headline = {card["label"]: card["value"] for card in response.context["headline"]}
    assert headline["走访率（教师参与）"] == "60.0%"
    assert headline["家访率（学生覆盖）"] == "56.7%"
    assert headline["重点关注学生家访率"] == "50.0%"
    assert headline["特殊学生入户家访满 2 次"] == "—"  # no special students: never an error
    assert headline["关爱台账·每日一问完成率"] == "92.5%"
    care = next(card for card in response.context["headline"] if card["label"] == "关爱台账·每日一问完成率")
    assert care["detail"] == "已记 37 / 应记 40；每周一见 75.0%（6 / 8）；关爱对象 2 人"
    assert headline["特殊学生一生一策建档率"] == "—"  # no special students
    assert "孤儿和事实无人抚养儿童" not in headline  # the placeholder card is gone
    assert headline["待处理家长意见"] == "3"
    assert headline["超时未报平安"] == "1"
    assert "数据计算于 2026年6月16日 10:00" in html
    categories = {c["label"]: c for c in response.context["categories"]}
    assert categories["留守儿童（含单亲子女）"]["rate"] == "50.0%"
    assert categories["残疾学生"]["rate"] == "—"
    # The charts get their data through json_script and are drawn by the static script.
    assert 'id="dashboard-data"' in html and "js/dashboard" in html and "echarts.min" in html
    assert "<script>" not in html  # no inline script


def test_before_any_computation_the_dashboard_says_so_instead_of_drawing_empty_charts(world, login):
    make_campaign()
    html = page(login(world.bureau_admin).get(reverse("statistics_county")))
    assert "统计数据尚未计算" in html
    assert "data-chart" not in html and "dashboard-data" not in html
    html = page(login(world.school_admin).get(reverse("statistics_school", args=[world.school.pk])))
    assert "统计数据尚未计算" in html and world.school.name in html


def test_without_a_campaign_the_dashboard_says_so(world, login):
    html = page(login(world.bureau_admin).get(reverse("statistics_county")))
    assert "还没有设置家访活动" in html


def test_schools_behind_todays_expected_progress_are_highlighted(world, stats, login):
    response = login(world.bureau_admin).get(reverse("statistics_county"), {"period": FULL})
    html = page(response)
    assert response.context["progress_text"]["expected"] == EXPECTED_TODAY
    lines = {line.name: line for line in response.context["children_table"].lines}
    assert lines[world.other_school.name].behind  # 20.0% < 48.0%
    assert not lines[world.school.name].behind  # 75.0%
    assert html.count('data-behind="1"') == 2  # the other school and its zone
    assert "落后进度" in html
    units = response.context["charts"]["units"]
    assert units["expected"] == 48.0
    assert units["behind"] == [False, True]


def test_the_whole_campaign_view_measures_progress_against_the_current_phase(world, stats, login):
    # In the phase the school is behind; over the whole campaign it looks fine.
    UnitStatistics.objects.filter(level=Level.SCHOOL, unit_id=world.school.pk, period=FULL).update(students_visited=40)
    response = login(world.bureau_admin).get(reverse("statistics_county"))
    lines = {line.name: line for line in response.context["children_table"].lines}
    assert lines[world.school.name].behind
    labels = [header.column.label for header in response.context["children_table"].headers]
    assert "第一轮全员家访家访率" in labels
    assert "20.0%" in lines[world.school.name].cells[labels.index("第一轮全员家访家访率") - 1]


def test_outside_a_visiting_phase_there_is_no_progress_line(world, stats, login):
    with time_machine.travel(datetime.datetime(2026, 8, 10, 10, 0, tzinfo=SHANGHAI), tick=False):
        response = login(world.bureau_admin).get(reverse("statistics_county"))
    assert response.context["progress"] is None
    assert not any(line.behind for line in response.context["children_table"].lines)


def test_expected_progress_is_a_straight_line_from_the_phase_start_to_its_end():
    start, end = datetime.date(2026, 6, 1), datetime.date(2026, 6, 30)
    assert str(expected_coverage(target=90, start=start, end=end, today=datetime.date(2026, 5, 31))) == "0.0"
    assert str(expected_coverage(target=90, start=start, end=end, today=datetime.date(2026, 6, 16))) == "48.0"
    assert str(expected_coverage(target=90, start=start, end=end, today=end)) == "90.0"
    assert str(expected_coverage(target=90, start=start, end=end, today=datetime.date(2026, 7, 9))) == "90.0"


def _add_schools(world, build: StatsBuilder, coverages: list[int]) -> list[School]:
    schools = []
    for index, visited in enumerate(coverages):
        school = factories.SchoolFactory(zone=world.school.zone, name=f"排序{index}小学", code=f"S9{index:03d}")
        build.school(school, students_required=100, students_visited=visited, staff_total=10 - index)
        schools.append(school)
    return schools


def test_the_ranking_sorts_by_any_column_both_ways_empty_values_last(world, stats, login):
    _add_schools(world, stats, [90, 10, 0])
    factories_school = factories.SchoolFactory(zone=world.school.zone, name="无学生小学", code="S9999")
    stats.school(factories_school)  # no students: coverage 「—」
    client = login(world.bureau_admin)
    response = client.get(reverse("statistics_county"), {"sort": "-coverage_rate"})
    table = response.context["children_table"]
    assert names(table) == ["排序0小学", "城关第一小学", "东山中心小学", "排序1小学", "排序2小学", "无学生小学"]
    assert response.context["charts"]["units"]["names"] == names(table)  # the chart ranks as the table
    coverage = next(h for h in table.headers if h.column.key == "coverage_rate")
    assert coverage.state == "descending" and coverage.sort == "coverage_rate"
    table = client.get(reverse("statistics_county"), {"sort": "coverage_rate"}).context["children_table"]
    assert names(table) == ["排序2小学", "排序1小学", "东山中心小学", "城关第一小学", "排序0小学", "无学生小学"]
    table = client.get(reverse("statistics_county"), {"sort": "name"}).context["children_table"]
    assert names(table) == sorted(names(table))
    table = client.get(reverse("statistics_county"), {"sort": "nonsense"}).context["children_table"]
    assert names(table)[0] == "城关第一小学"  # the organisation's order (sort_key)
    # With no column chosen the ranking is by coverage, highest first (issue 13).
    default = client.get(reverse("statistics_county"))
    assert names(default.context["children_table"]) == [
        "排序0小学",
        "城关第一小学",
        "东山中心小学",
        "排序1小学",
        "排序2小学",
        "无学生小学",
    ]
    assert 'aria-sort="descending"' in page(default)


def test_the_inspectors_assigned_schools_come_first_with_a_badge_whatever_the_sort(world, stats, login):
    extra = _add_schools(world, stats, [100])
    client = login(world.inspector)
    for sort in ("", "-coverage_rate", "coverage_rate", "-staff_total"):
        response = client.get(reverse("statistics_county"), {"sort": sort})
        lines = response.context["children_table"].lines
        assert lines[0].name == world.school.name and lines[0].assigned
        assert not any(line.assigned for line in lines[1:])
    assert "包联" in page(response)
    # A bureau admin has no assigned schools: the top coverage leads.
    table = login(world.bureau_admin).get(reverse("statistics_county"), {"sort": "-coverage_rate"})
    assert names(table.context["children_table"])[0] == extra[0].name


def test_the_pages_drill_down_from_the_county_to_a_class(world, stats, login):
    client = login(world.bureau_admin)
    zone_url = reverse("statistics_zone", args=[world.school.zone.pk])
    school_url = reverse("statistics_school", args=[world.school.pk])
    class_url = reverse("statistics_class", args=[world.school.pk, world.school_class.pk])
    html = page(client.get(reverse("statistics_county")))
    assert f'href="{zone_url}"' in html and f'href="{school_url}"' in html
    html = page(client.get(zone_url, {"period": FULL}))
    assert f'href="{school_url}?period={FULL}"' in html
    assert world.other_school.name not in html
    html = page(client.get(school_url))
    assert f'href="{class_url}"' in html and "四年级（1）班" in html
    html = page(client.get(class_url))
    assert "三年级（2）班 · 统计看板" in html
    assert f'href="{school_url}"' in html and f'href="{zone_url}"' in html  # breadcrumbs back up


def test_a_school_admins_breadcrumbs_link_nothing_above_the_school(world, stats, login):
    html = page(
        login(world.school_admin).get(reverse("statistics_class", args=[world.school.pk, world.school_class.pk]))
    )
    assert reverse("statistics_zone", args=[world.school.zone.pk]) not in html
    assert f'href="{reverse("statistics_county")}"' not in html
    assert f'href="{reverse("statistics_school", args=[world.school.pk])}"' in html


def test_the_period_selector_switches_to_a_phases_figures(world, stats, login):
    UnitStatistics.objects.filter(level=Level.COUNTY, period=FULL).update(students_visited=30)
    client = login(world.bureau_admin)
    headline = client.get(reverse("statistics_county"), {"period": FULL}).context["headline"]
    assert headline[1]["value"] == "10.0%"
    html = page(client.get(reverse("statistics_county"), {"period": FULL}))
    assert "第一轮全员家访" in html and f"?period={FULL}" in html
    headline = client.get(reverse("statistics_county"), {"period": "bogus"}).context["headline"]
    assert headline[1]["value"] == "56.7%"  # an unknown period is the whole campaign


def test_the_school_page_lists_its_classes_and_its_teachers(world, stats, login):
    response = login(world.school_admin).get(reverse("statistics_school", args=[world.school.pk]))
    html = page(response)
    assert names(response.context["children_table"]) == ["三年级（2）班", "四年级（1）班"]
    teachers = response.context["teachers_table"]
    assert set(names(teachers)) == {"张老师", "李班主任", "孙校长"}
    assert "75.0%" in html and world.other_school.name not in html
    assert response.context["charts"]["trend"]["days"][-1] == "2026-06-16"


def test_the_teacher_assessment_shows_each_teachers_figures_sorted_on_request(world, stats, login):
    client = login(world.school_admin)
    url = reverse("teacher_assessment", args=[world.school.pk])
    table = client.get(url, {"sort": "-coverage_rate"}).context["table"]
    assert names(table) == ["张老师", "李班主任", "孙校长"]  # 75.0%, 25.0%, no students last
    lines = {line.name: [text for text, _ in line.cells] for line in table.lines}
    assert lines["张老师"] == ["40", "30", "75.0%", "12", "8", "10", "2"]
    assert lines["孙校长"][2] == "—"
    table = client.get(url, {"sort": "-records_draft"}).context["table"]
    assert names(table)[0] == "张老师"
    html = page(client.get(url))
    assert "赵老师" not in html and "导出 Excel" in html


def test_the_teacher_assessment_xlsx_opens_in_the_pages_order_with_formulas_neutralised(world, stats, login):
    world.head_teacher.real_name = '=HYPERLINK("http://x")'
    world.head_teacher.save(update_fields=["real_name"])
    response = login(world.zone_admin).get(
        reverse("teacher_assessment_xlsx", args=[world.school.pk]), {"sort": "-students_visited", "period": FULL}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(workbook.active.iter_rows(values_only=True))
    assert rows[0][:6] == ("序号", "教师", "身份", "任教学生数", "已走访学生数", "覆盖率（%）")
    assert [row[1] for row in rows[1:]] == ["张老师", '\'=HYPERLINK("http://x")', "孙校长"]
    assert rows[1][3:10] == (40, 30, 75.0, 12, 8, 10, 2)
    assert rows[3][5] == "—"
    event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT, user=world.zone_admin)
    assert event.object_type == "ledgers.TeacherStatistics" and event.object_id == str(world.school.pk)
    assert event.detail == {
        "filters": {"school": world.school.pk, "period": FULL, "sort": "-students_visited"},
        "period": FULL,
        "rows": 3,
        "format": "xlsx",
    }


def test_sorting_keeps_items_without_a_value_last_in_both_directions(world, stats):
    rows = list(TeacherStatistics.objects.filter(period=WHOLE_CAMPAIGN, school=world.school).select_related("teacher"))
    for sort in ("coverage_rate", "-coverage_rate"):
        ordered, key, _descending = sort_items(rows, TEACHER_COLUMNS, sort)
        assert key == "coverage_rate" and ordered[-1].teacher == world.school_admin


def test_the_navigation_links_each_role_to_its_statistics(world, stats, login):
    html = page(login(world.school_admin).get(reverse("statistics_school", args=[world.school.pk])))
    assert f'href="{reverse("teacher_assessment", args=[world.school.pk])}">教师考核' in html
    assert f'href="{reverse("statistics_school", args=[world.school.pk])}">统计看板' in html
    html = page(login(world.zone_admin).get(reverse("statistics_zone", args=[world.school.zone.pk])))
    assert f'href="{reverse("statistics_zone", args=[world.school.zone.pk])}">统计看板' in html
    for user in (world.inspector, world.bureau_admin):
        html = page(login(user).get(reverse("statistics_county")))
        assert f'href="{reverse("statistics_county")}">统计看板' in html and ">教师考核<" not in html
    html = page(login(world.teacher).get("/"))
    assert "统计看板" not in html and "教师考核" not in html


# --- reading only the aggregates, in a fixed number of queries -------------------------------------


def _grow(world, build: StatsBuilder, count: int) -> None:
    """``count`` more schools, each with its rows, a class row, a teacher row and daily history."""
    zone = world.school.zone
    for index in range(count):
        school = factories.SchoolFactory(zone=zone, name=f"新增{index}小学", code=f"S8{index:03d}")
        build.school(school, students_required=50, students_visited=index)
        school_class = factories.SchoolClassFactory(school=school)
        build.school_class(school_class, students_required=50, students_visited=index)
        teacher = factories.UserFactory(school=school)
        build.teacher(teacher, students_assigned=5)
        factories.InspectorAssignmentFactory(inspector=world.inspector, school=school)
    for index in range(count):
        build.school_class(
            factories.SchoolClassFactory(school=world.school, grade=5, number=index + 1), students_required=10
        )
        build.teacher(factories.UserFactory(school=world.school), students_assigned=5)


PINNED = {
    # page: (user, url, queries: session, user, campaign, phases, then the page's own reads; main's
    # base was county 10, inspector 11, zone 9, school 10, class 8). The ranking sorted and paginated
    # in the database is two (its counts and its page, the assigned schools and the phase's rate
    # within them, the inspector's assigned schools no longer a query of their own): + 1 on county,
    # zone and school pages. + 1 on each dashboard: the schools whose figures are behind
    # (monitoring.selectors.figures_behind); + 1 on every unit page: the targets of the campaign
    # (UnitTargets); + 3 on county, zone and school pages: the oversight panel
    # (oversight.selectors.school_oversight); + 1 on every unit page: when the figures last changed
    # (the render cache's key), + 1 more on a school page for its teachers' rows; + 2 on the teacher
    # assessment (visits found untrue and cases chosen, oversight_tags.teacher_oversight).
    # A zone's or the county's oversight panel: 6 queries (the ten schools chosen in the database).
    "county": ("bureau_admin", lambda w: reverse("statistics_county"), 10 + 1 + 1 + 1 + 6 + 1),
    "county_inspector": ("inspector", lambda w: reverse("statistics_county"), 11 + 1 + 1 + 6 + 1),
    "zone": ("zone_admin", lambda w: reverse("statistics_zone", args=[w.school.zone.pk]), 9 + 1 + 1 + 1 + 6 + 1),
    "school": (
        "school_admin",
        lambda w: reverse("statistics_school", args=[w.school.pk]),
        10 + 1 + 1 + 1 + 3 + 1 + 1,
    ),
    "class": (
        "school_admin",
        lambda w: reverse("statistics_class", args=[w.school.pk, w.school_class.pk]),
        8 + 1 + 1 + 1,
    ),
    "teachers": ("school_admin", lambda w: reverse("teacher_assessment", args=[w.school.pk]), 7 + 2),
    "teachers_xlsx": ("school_admin", lambda w: reverse("teacher_assessment_xlsx", args=[w.school.pk]), 7),
}


@pytest.mark.parametrize("name", PINNED)
def test_the_query_count_is_pinned_and_does_not_grow_with_schools(
    world, stats, login, name, django_assert_max_num_queries
):
    role, url_of, pinned = PINNED[name]
    client = login(world.users()[role])
    url = url_of(world)
    with django_assert_max_num_queries(pinned) as small:
        assert client.get(url).status_code == 200
    _grow(world, stats, 28)  # 2 schools become 30
    # as the engine's refresh does: new figures, a new computed time (and so no cached page)
    UnitStatistics.objects.update(computed_at=timezone.now() + datetime.timedelta(seconds=1))
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(url)
    assert response.status_code == 200
    if name.startswith("county"):
        assert len(response.context["children_table"].lines) == 30


def _add_many(world, build: StatsBuilder, coverages: list[int]) -> None:
    for index, visited in enumerate(coverages):
        school = factories.SchoolFactory(zone=world.school.zone, name=f"分页{index:02d}小学", code=f"S6{index:03d}")
        build.school(school, students_required=100, students_visited=visited, staff_total=10)


def test_the_ranking_is_paginated_by_fifty_sorted_in_the_database_across_pages(world, stats, login):
    coverages = [(index * 37) % 101 for index in range(58)]  # 60 schools with the world's two
    _add_many(world, stats, coverages)
    client = login(world.bureau_admin)
    first = client.get(reverse("statistics_county"), {"sort": "-coverage_rate", "period": FULL})
    second = client.get(reverse("statistics_county"), {"sort": "-coverage_rate", "period": FULL, "page": 2})
    lines = first.context["children_table"].lines + second.context["children_table"].lines
    assert [len(first.context["children_table"].lines), len(second.context["children_table"].lines)] == [50, 10]
    rows = UnitStatistics.objects.filter(level=Level.SCHOOL, period=FULL).order_by("sort_key", "name")
    expected = sorted(rows, key=lambda r: r.coverage_rate, reverse=True)  # stable: ties keep sort_key order
    assert [line.name for line in lines] == [r.name for r in expected]
    # Behind the line counts every school, not only the page's; the page's chart is the page's.
    behind = sum(1 for r in rows if r.coverage_rate < Decimal(EXPECTED_TODAY.rstrip("%")))
    assert first.context["behind_count"] == second.context["behind_count"] == behind
    assert first.context["charts"]["units"]["names"] == [line.name for line in lines[:50]]
    html = page(first)
    assert "第 1 / 2 页" in html and "page=2" in html
    assert "sort=coverage_rate" in html and "sort=-coverage_rate&amp;page" not in html  # a new sort starts at page 1


def test_the_inspectors_assigned_schools_lead_the_first_page_only(world, stats, login):
    _add_many(world, stats, [(index * 37) % 101 for index in range(58)])
    client = login(world.inspector)
    first = client.get(reverse("statistics_county"), {"sort": "coverage_rate"}).context["children_table"]
    second = client.get(reverse("statistics_county"), {"sort": "coverage_rate", "page": 2}).context["children_table"]
    assert first.lines[0].name == world.school.name and first.lines[0].assigned
    assert not any(line.assigned for line in first.lines[1:] + second.lines)
    assert world.school.name not in names(second)


def test_the_county_page_stays_small_however_many_schools(world, stats, login):
    _add_many(world, stats, list(range(60)))
    size = len(page(login(world.bureau_admin).get(reverse("statistics_county"))).encode())
    for index in range(60):
        stats.school(factories.SchoolFactory(zone=world.school.zone, name=f"扩充{index}小学", code=f"S7{index:03d}"))
    grown = len(page(login(world.bureau_admin).get(reverse("statistics_county"))).encode())
    assert grown < size * 1.05  # 62 or 122 schools: one page of 50 rows either way


def test_a_cached_page_is_served_without_reading_the_ranking(world, stats, login, django_assert_max_num_queries):
    client = login(world.bureau_admin)
    first = client.get(reverse("statistics_county"))
    # session, user, campaign, phases, the county's row, the targets, when the figures last changed
    # (the key), and what is never cached: the freshness note (1) and the oversight panel (3)
    with django_assert_max_num_queries(6 + 2 + 1 + 3) as cached:
        second = client.get(reverse("statistics_county"))
    ranking = [
        q["sql"]
        for q in cached.captured_queries[5:]
        if "ORDER BY" in q["sql"] and "ledgers_unitstatistics" in q["sql"] and "latest_computed_" not in q["sql"]
    ]  # the key's query reads the latest computed time off the end of an index, not the ranking
    assert not ranking
    assert page(second).count("<tr") == page(first).count("<tr")  # the same tables, from the cache
    assert second.context["charts"] == first.context["charts"]


def test_the_rendered_figures_are_cached_until_the_figures_are_computed_again(world, stats, login):
    client = login(world.bureau_admin)
    assert ">210<" in page(client.get(reverse("statistics_county")))  # the county's visits, now cached
    county = UnitStatistics.objects.filter(level=Level.COUNTY, period=WHOLE_CAMPAIGN)
    county.update(visits=4321)  # changed without a computation: the cached page stands
    assert ">4321<" not in page(client.get(reverse("statistics_county")))
    county.update(computed_at=timezone.now() + datetime.timedelta(seconds=1))  # as a refresh writes it
    assert ">4321<" in page(client.get(reverse("statistics_county")))
    # Another role, or another sort, never gets this page's cached figures.
    assert "包联" in page(login(world.inspector).get(reverse("statistics_county")))


def test_the_county_page_with_the_whole_campaign_selected_adds_one_query_for_the_phase(world, stats, login):
    client = login(world.bureau_admin)
    with CaptureQueriesContext(connection) as whole:
        client.get(reverse("statistics_county"))
    cache.clear()  # the oversight panel, kept a minute, is read again as by the first request
    with CaptureQueriesContext(connection) as phase:
        client.get(reverse("statistics_county"), {"period": FULL})
    assert len(whole.captured_queries) == len(phase.captured_queries) + 1


def test_no_statistics_page_reads_the_visit_table(world, stats, login):
    for role in ("bureau_admin", "inspector", "zone_admin", "school_admin"):
        client = login(world.users()[role])
        for name, url in urls(world).items():
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url, follow=name == "county")
            assert response.status_code in (200, 404)
            sql = "\n".join(query["sql"] for query in captured.captured_queries)
            assert "visits_visit" not in sql, (role, name)


# --- with the engine ---------------------------------------------------------------------------


def test_the_pages_show_what_the_engine_computed(world, login):
    from ledgers.statistics import statistics_compute
    from visits.models import Method, Visit

    campaign = make_campaign()
    phase = campaign.phases.get(kind=FULL)
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=NOW - datetime.timedelta(days=2),
        phase=phase,
        method=Method.IN_HOME,
        status=Visit.Status.SUBMITTED,
        submitted_at=NOW - datetime.timedelta(days=2),
    )
    visit.students.set([world.student])
    statistics_compute(campaign=campaign, now=timezone.now())

    response = login(world.bureau_admin).get(reverse("statistics_county"))
    headline = {card["label"]: card["value"] for card in response.context["headline"]}
    assert headline["家访率（学生覆盖）"] == "33.3%"  # 1 of the county's 3 students
    lines = {line.name: line for line in response.context["children_table"].lines}
    assert lines[world.school.name].behind is False  # 50.0% of its 2 students ≥ 48.0%
    assert lines[world.other_school.name].behind is True

    with CaptureQueriesContext(connection) as captured:
        response = login(world.school_admin).get(reverse("teacher_assessment", args=[world.school.pk]))
    lines = {line.name: [text for text, _ in line.cells] for line in response.context["table"].lines}
    assert lines["张老师"][:3] == ["1", "1", "100.0%"]
    assert not any("visits_visit" in query["sql"] for query in captured.captured_queries)


@pytest.mark.parametrize(
    ("role", "name"), [("bureau_admin", "county"), ("zone_admin", "zone"), ("school_admin", "school")]
)
def test_each_dashboard_links_to_its_own_units_statistics_sheet(world, stats, login, role, name):
    client = login(world.users()[role])
    html = page(client.get(urls(world)[name], {"period": FULL}))
    link = re.search(r'href="([^"]+)" data-testid="sheet-link"', html).group(1).replace("&amp;", "&")
    assert f"period={FULL}" in link

    response = client.get(link)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")


# --- targets per unit in the ranking read from the database (issue 12 with issue 9) ----------------

TARGET_RATES = {"participation": 100, "focus_coverage": 100, "special_in_home": 100}


def test_the_dashboards_targets_follow_the_precedence_of_targets_for(world, stats):
    from oversight.services import target_set
    from schools.targets import targets_for

    campaign = Campaign.objects.get()
    target_set(campaign=campaign, coverage=90, acting_user=world.bureau_admin, **TARGET_RATES)
    target_set(campaign=campaign, zone=world.school.zone, coverage=70, acting_user=world.bureau_admin, **TARGET_RATES)
    target_set(campaign=campaign, school=world.school, coverage=50, acting_user=world.bureau_admin, **TARGET_RATES)
    rows = list(UnitStatistics.objects.filter(campaign=campaign))
    expected = targets_for(campaign, rows)
    targets = UnitTargets(campaign)
    assert {(r.level, r.unit_id): targets.of(r) for r in rows} == expected
    # The SQL CASE gives every row the same target as ``of``.
    annotated = UnitStatistics.objects.filter(campaign=campaign).annotate(
        target=targets.case(lambda t: t.coverage, FloatField())
    )
    assert {(r.level, r.unit_id): r.target for r in annotated} == {k: t.coverage for k, t in expected.items()}
    assert {t.coverage for t in expected.values()} == {90, 70, 50}


def test_the_ranking_counts_in_sql_the_units_behind_their_own_line_and_a_new_target_is_not_served_from_the_cache(
    world, stats, login
):
    from oversight.services import target_set

    campaign = Campaign.objects.get()
    client = login(world.bureau_admin)

    def behind() -> tuple[int, set[str]]:
        response = client.get(reverse("statistics_county"), {"period": FULL})
        lines = response.context["children_table"].lines
        return response.context["behind_count"], {line.name for line in lines if line.behind}

    count, names = behind()
    assert world.other_school.name in names and count == len(names)  # 20.0% under the county's line
    # Figures unchanged (no new computed time), one school's own target lowered: a new page.
    target_set(
        campaign=campaign, school=world.other_school, coverage=35, acting_user=world.bureau_admin, **TARGET_RATES
    )
    count, names = behind()
    assert world.other_school.name not in names and count == len(names)


def test_a_class_page_cached_for_the_school_admin_is_not_served_to_a_county_role(world, login):
    campaign = factories.CampaignFactory()
    if not campaign.phases.exists():
        factories.PhaseFactory(campaign=campaign)
    build = StatsBuilder(campaign)
    build.school(world.school, students_required=2)
    build.school_class(world.school_class, students_required=5, categories={"disability": [2, 1]})
    url = reverse("statistics_class", args=[world.school.pk, world.school_class.pk])
    assert "&lt;3" not in page(login(world.school_admin).get(url))  # exact, and now cached
    assert "&lt;3" in page(login(world.bureau_admin).get(url))
