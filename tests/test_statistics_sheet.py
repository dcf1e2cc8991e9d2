"""The bureau's statistics sheet (「万名教师大家访」活动情况统计表): the real XLSX opened with openpyxl
(and, where LibreOffice is installed, printed to PDF), read the way a user reads it.

The stored rows are made here directly; one test at the end fills them with the statistics engine
from students and visits and checks the sheet against a count of its own.
"""

import datetime
import io
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from ledgers.models import WHOLE_CAMPAIGN, Level, UnitStatistics
from schools.models import AuditEvent, Campaign, Phase, Role, User
from students.models import Category, Student
from tests import factories
from visits.models import Method, Visit

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
COMPUTED = datetime.datetime(2026, 5, 20, 0, 30, tzinfo=datetime.UTC)  # 08:30 in Shanghai
FULL = Phase.Kind.FULL_ROUND
TITLE = "「万名教师大家访」活动情况统计表"
COLUMNS = ("单位", "参与家访教师数量", "走访率", "家访学生数量", "已走访人数", "学生总数", "家访率")
HEADER_ROW = 4
URL = "/statistics/sheet.xlsx"
REQUIRE_LIBREOFFICE = os.environ.get("HOMEVISIT_REQUIRE_LIBREOFFICE") == "1"


# --- stored rows -------------------------------------------------------------------------------


def stats(campaign: Campaign, level: str, unit_id: int, name: str, *, period: str = WHOLE_CAMPAIGN, **fields):
    """One stored row, as the statistics engine would leave it."""
    return UnitStatistics.objects.create(
        campaign=campaign, period=period, level=level, unit_id=unit_id, name=name, computed_at=COMPUTED, **fields
    )


@dataclass
class Sheets:
    campaign: Campaign
    county: UnitStatistics
    zone: UnitStatistics
    other_zone: UnitStatistics
    school: UnitStatistics
    other_school: UnitStatistics
    school_class: UnitStatistics
    plain_class: UnitStatistics


@pytest.fixture
def sheets(world) -> Sheets:
    """Rows for the world's county, two zones, two schools and three classes, whole campaign; the
    county, the first zone and school and its classes also for the first round. The first school's
    own row is not the sum of its classes (a teacher counts once in the school, in each class)."""
    campaign = factories.CampaignFactory()
    factories.PhaseFactory(campaign=campaign, kind=FULL)
    school, other = world.school, world.other_school
    school.contact_name, school.contact_phone = "孙校长", "0371-66880011"
    school.save()
    zone, other_zone = school.zone, other.zone
    in_school = {"zone": zone, "school": school}
    result = Sheets(
        campaign=campaign,
        county=stats(
            campaign,
            Level.COUNTY,
            0,
            "全县",
            staff_total=11,
            teachers_participating=8,
            students_required=45,
            students_visited=35,
            students_total=46,
        ),
        zone=stats(
            campaign,
            Level.ZONE,
            zone.pk,
            zone.name,
            zone=zone,
            sort_key=zone.code,
            staff_total=8,
            teachers_participating=7,
            students_required=40,
            students_visited=35,
            students_total=41,
        ),
        other_zone=stats(
            campaign,
            Level.ZONE,
            other_zone.pk,
            other_zone.name,
            zone=other_zone,
            sort_key=other_zone.code,
            staff_total=0,
            students_required=0,
            students_total=5,
        ),
        school=stats(
            campaign,
            Level.SCHOOL,
            school.pk,
            school.name,
            sort_key=school.code,
            staff_total=8,
            teachers_participating=7,
            students_required=40,
            students_visited=35,
            students_total=41,
            visits=50,
            in_home_visits=30,
            focus_students=12,
            focus_visited=9,
            special_students=6,
            special_meeting_rule=4,
            special_with_plan=5,
            care_students=2,
            care_asks_due=30,
            care_asks_done=27,
            care_meetings_due=6,
            care_meetings_done=5,
            open_feedback=3,
            overdue_safety_reports=1,
            categories={"left_behind": [5, 4], "economic_hardship": [3, 2], "orphan": [2, 2]},
            **in_school,
        ),
        other_school=stats(
            campaign,
            Level.SCHOOL,
            other.pk,
            other.name,
            zone=other_zone,
            school=other,
            sort_key=other.code,
            staff_total=3,
            teachers_participating=1,
            students_required=0,
            students_total=5,
        ),
        school_class=stats(
            campaign,
            Level.CLASS,
            world.school_class.pk,
            world.school_class.name,
            sort_key="03002",
            staff_total=2,
            teachers_participating=2,
            students_required=20,
            students_visited=18,
            students_total=20,
            **in_school,
        ),
        plain_class=stats(
            campaign,
            Level.CLASS,
            world.plain_class.pk,
            world.plain_class.name,
            sort_key="04001",
            staff_total=3,
            teachers_participating=1,
            students_required=20,
            students_visited=17,
            students_total=21,
            **in_school,
        ),
    )
    stats(
        campaign,
        Level.CLASS,
        world.other_class.pk,
        world.other_class.name,
        zone=other_zone,
        school=other,
        staff_total=1,
        students_total=5,
    )
    for row, required, visited in ((result.county, 45, 10), (result.zone, 40, 10), (result.school, 40, 10)):
        stats(
            campaign,
            row.level,
            row.unit_id,
            row.name,
            period=FULL,
            zone=row.zone,
            school=row.school,
            sort_key=row.sort_key,
            staff_total=row.staff_total,
            teachers_participating=2,
            students_required=required,
            students_visited=visited,
            students_total=row.students_total,
        )
    stats(
        campaign,
        Level.CLASS,
        world.school_class.pk,
        world.school_class.name,
        period=FULL,
        sort_key="03002",
        **in_school,
    )
    return result


# --- reading the workbook as a user sees it ---------------------------------------------------------


def download(client, **params) -> openpyxl.Workbook:
    response = client.get(URL, params)
    assert response.status_code == 200, response.status_code
    content = b"".join(response.streaming_content)
    return openpyxl.load_workbook(io.BytesIO(content))


def shown(cell) -> str:
    """The text a spreadsheet shows for the cell."""
    if cell.value is None:
        return ""
    if cell.number_format == "0.0%" and isinstance(cell.value, int | float):
        return f"{cell.value * 100:.1f}%"
    return str(cell.value)


def table(ws, *, header_rows: int = 1) -> list[list[str]]:
    """The table's rows below its header, down to and including 合计."""
    lines = []
    for row in ws.iter_rows(min_row=HEADER_ROW + header_rows):
        lines.append([shown(cell) for cell in row])
        if row[0].value == "合计":
            return lines
    raise AssertionError("no 合计 row")


def figures(row: UnitStatistics) -> list[str]:
    """The seven columns a stored row should show, from its fields (rates computed here)."""

    def percent(numerator: int, denominator: int) -> str:
        return f"{numerator * 100 / denominator:.1f}%" if denominator else "—"

    return [
        row.name,
        str(row.teachers_participating),
        percent(row.teachers_participating, row.staff_total),
        str(row.students_required),
        str(row.students_visited),
        str(row.students_total),
        percent(row.students_visited, row.students_required),
    ]


def texts(ws) -> str:
    return "\n".join(str(cell.value) for row in ws.iter_rows() for cell in row if cell.value is not None)


# --- what the sheet shows --------------------------------------------------------------------------


def test_school_admin_gets_the_title_the_heading_line_and_the_seven_columns_in_order(sheets, world, login):
    ws = download(login(world.school_admin)).worksheets[0]

    assert ws["A1"].value == TITLE
    assert "A1:G1" in {str(r) for r in ws.merged_cells.ranges}
    heading = [cell.value for cell in ws[2] if cell.value]
    assert heading[:3] == ["报送单位：城关第一小学", "联系人：孙校长", "电话：0371-66880011"]
    today = timezone.localdate()
    assert heading[3] == f"{today.year} 年 {today.month} 月 {today.day} 日"
    assert tuple(cell.value for cell in ws[HEADER_ROW]) == COLUMNS


def test_a_school_sheet_has_one_row_per_class_then_the_schools_own_row_as_the_total(sheets, world, login):
    ws = download(login(world.school_admin)).worksheets[0]

    assert table(ws) == [
        figures(sheets.school_class),
        figures(sheets.plain_class),
        ["合计", *figures(sheets.school)[1:]],
    ]
    # Not a sum of the classes: the school's staff and rates are its own.
    assert table(ws)[-1][1:3] == ["7", "87.5%"]


def test_a_zone_sheet_lists_its_schools_and_names_the_exporting_zone_admin(sheets, world, login):
    world.zone_admin.phone = "13900001111"
    world.zone_admin.save()

    ws = download(login(world.zone_admin)).worksheets[0]

    assert [cell.value for cell in ws[2] if cell.value][:3] == [
        "报送单位：城关片区",
        "联系人：周主任",
        "电话：13900001111",
    ]
    assert table(ws) == [figures(sheets.school), ["合计", *figures(sheets.zone)[1:]]]


def test_the_county_sheet_lists_its_zones_or_with_detail_every_school(sheets, world, login):
    client = login(world.bureau_admin)

    by_zone = download(client).worksheets[0]
    by_school = download(client, detail="schools").worksheets[0]

    assert [cell.value for cell in by_zone[2] if cell.value][:2] == ["报送单位：全县", "联系人：吴科长"]
    county_total = ["合计", *figures(sheets.county)[1:]]
    assert table(by_zone) == [figures(sheets.zone), figures(sheets.other_zone), county_total]
    assert table(by_school) == [figures(sheets.school), figures(sheets.other_school), county_total]


def test_rates_show_as_percentages_with_one_decimal_and_a_zero_denominator_as_a_dash(sheets, world, login):
    ws = download(login(world.bureau_admin), detail="schools").worksheets[0]
    first, other = ws[HEADER_ROW + 1], ws[HEADER_ROW + 2]

    assert first[2].value == pytest.approx(0.875)  # a number a spreadsheet can sort and sum
    assert first[2].number_format == "0.0%"
    assert shown(first[2]) == "87.5%"
    assert shown(other[2]) == "33.3%"
    assert other[6].value == "—"  # no students to visit
    zone_sheet = download(login(world.bureau_admin)).worksheets[0]
    assert table(zone_sheet)[1][2] == "—"  # no staff: no participation rate, not an error


def test_the_period_and_the_time_of_computation_are_named_and_the_phase_rows_used(sheets, world, login):
    client = login(world.school_admin)

    whole = download(client).worksheets[0]
    first_round = download(client, period=FULL).worksheets[0]

    assert "统计期间：全年" in texts(whole)
    assert "数据计算于 2026-05-20 08:30" in texts(whole)
    assert "统计期间：第一轮全员家访（" in texts(first_round)
    assert table(first_round)[-1] == ["合计", "2", "25.0%", "40", "10", "41", "25.0%"]
    assert [line[0] for line in table(first_round)] == ["三年级（2）班", "合计"]  # only the class computed


def test_the_definitions_are_a_note_under_the_table(sheets, world, login):
    ws = download(login(world.school_admin)).worksheets[0]
    total_row = next(row[0].row for row in ws.iter_rows() if row[0].value == "合计")
    notes = [row[0].value for row in ws.iter_rows(min_row=total_row + 1) if row[0].value]

    assert notes[0] == "说明："
    for words in (
        "参与家访教师数量",
        "走访率 = 参与家访教师数量 ÷",
        "家访学生数量",
        "已走访人数",
        "家访率 = 已走访人数 ÷",
    ):
        assert any(words in note for note in notes), words
    assert any("显示「—」" in note for note in notes)
    # What each level counts (DESIGN §7): the whole campaign's days, and the class's own teachers.
    assert any("含阶段之间的日子" in note for note in notes)
    assert any("班级为本班班主任和任课教师中" in note and "不计入本班" in note for note in notes)
    assert all(f"A{r}:G{r}" in {str(m) for m in ws.merged_cells.ranges} for r in range(total_row + 2, total_row + 4))


def test_the_date_on_the_heading_line_is_todays_date_in_shanghai(sheets, world, login):
    client = login(world.school_admin)
    late_evening_utc = datetime.datetime(sheets.campaign.year, 5, 19, 17, 0, tzinfo=datetime.UTC)  # 20th, 01:00

    with time_machine.travel(late_evening_utc, tick=False):
        ws = download(client).worksheets[0]

    assert [cell.value for cell in ws[2] if cell.value][-1] == f"{sheets.campaign.year} 年 5 月 20 日"


def test_the_sheet_prints_on_a4_landscape_one_page_wide_with_the_header_repeated(sheets, world, login):
    workbook = download(login(world.bureau_admin), detail="schools")

    for ws in workbook.worksheets:
        assert ws.page_setup.orientation == "landscape"
        assert int(ws.page_setup.paperSize) == 9  # A4
        assert ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.page_setup.fitToWidth == 1
        assert ws.page_setup.fitToHeight == 0
        assert ws.print_title_rows.startswith(f"${HEADER_ROW}:$")
        assert "第 &P 页" in ws.oddFooter.center.text
    ws = workbook.worksheets[0]
    assert ws.print_title_rows == "$4:$4"
    assert ws.column_dimensions["A"].width >= 20
    assert all(ws.column_dimensions[letter].width >= 10 for letter in "BCDEFG")
    for row in ws.iter_rows(min_row=HEADER_ROW, max_row=HEADER_ROW + 3):
        for cell in row:
            assert cell.border.left.style == "thin" and cell.border.bottom.style == "thin", cell.coordinate
    assert ws["A4"].font.bold and ws[f"A{HEADER_ROW + 3}"].font.bold  # header and 合计
    assert not ws[f"A{HEADER_ROW + 1}"].font.bold


def test_text_that_starts_like_a_formula_is_kept_as_text(sheets, world, login):
    UnitStatistics.objects.filter(pk=sheets.school_class.pk).update(name='=HYPERLINK("http://evil.example","点我")')
    UnitStatistics.objects.filter(pk=sheets.plain_class.pk).update(name="@SUM(A1)")
    world.school.contact_phone = "+86 371 6688 0011"
    world.school.save()

    workbook = download(login(world.school_admin))
    ws = workbook.worksheets[0]

    evil, at_sign = ws[HEADER_ROW + 1][0], ws[HEADER_ROW + 2][0]
    # The text shows as it is (no apostrophe added), stored as a string with the quote prefix.
    assert evil.value == '=HYPERLINK("http://evil.example","点我")'
    assert evil.data_type == "s" and evil.quotePrefix
    assert at_sign.value == "@SUM(A1)" and at_sign.quotePrefix
    assert not ws[HEADER_ROW + 3][0].quotePrefix  # 合计: ordinary text untouched
    assert "电话：+86 371 6688 0011" in texts(ws)
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{sheet.title}!{cell.coordinate} is a live formula"
    assert workbook.worksheets[1][HEADER_ROW + 2][0].value == evil.value


def test_the_second_sheet_has_the_further_indicators_per_unit(sheets, world, login):
    workbook = download(login(world.school_admin))

    assert workbook.sheetnames == ["活动情况统计表", "其他指标"]
    ws = workbook["其他指标"]
    assert ws["A1"].value == f"{TITLE}（其他指标）"
    groups = [cell.value for cell in ws[HEADER_ROW] if cell.value]
    for label in (
        "教职工总数",
        "家访人次",
        "重点关注学生",
        *(Category(code).label for code in ("economic_hardship", "learning_difficulty", "major_change")),
        *(Category(code).label for code in ("left_behind", "migrant", "disability")),
        "特殊学生",
        "孤儿和事实无人抚养儿童",
        "每日一问",
        "每周一见",
        "待处理家长意见",
        "超时未报平安",
    ):
        assert label in groups, label
    columns = []
    group = ""
    for top, bottom in zip(ws[HEADER_ROW], ws[HEADER_ROW + 1], strict=True):
        group = top.value or group
        columns.append(f"{group}·{bottom.value}" if bottom.value else top.value)
    total = dict(zip(columns, table(ws, header_rows=2)[-1], strict=True))
    assert total["单位"] == "合计"
    assert total["教职工总数"] == "8"
    assert (total["家访人次·全部"], total["家访人次·其中入户"]) == ("50", "30")
    assert (total["重点关注学生·人数"], total["重点关注学生·已走访"], total["重点关注学生·走访率"]) == (
        "12",
        "9",
        "75.0%",
    )
    assert (total["留守儿童（含单亲子女）·人数"], total["留守儿童（含单亲子女）·已走访"]) == ("5", "4")
    assert (total["经济困难家庭·人数"], total["经济困难家庭·已走访"]) == ("3", "2")
    assert total["残疾学生·人数"] == "0"
    assert (total["特殊学生·人数"], total["特殊学生·入户家访满 2 次"], total["特殊学生·达标率"]) == ("6", "4", "66.7%")
    assert (total["孤儿和事实无人抚养儿童"], total["待处理家长意见"], total["超时未报平安"]) == ("2", "3", "1")
    assert (total["特殊学生·已建一生一策"], total["特殊学生·建档率"]) == ("5", "83.3%")
    assert (total["每日一问·应记"], total["每日一问·已记"], total["每日一问·完成率"]) == ("30", "27", "90.0%")
    assert (total["每周一见·应见"], total["每周一见·已见"], total["每周一见·完成率"]) == ("6", "5", "83.3%")
    first_class = dict(zip(columns, table(ws, header_rows=2)[0], strict=True))
    assert first_class["单位"] == "三年级（2）班"
    assert first_class["重点关注学生·走访率"] == "—"
    assert "合计" in texts(ws) and "说明：" in texts(ws)


def test_the_download_has_a_chinese_file_name(sheets, world, login):
    response = login(world.school_admin).get(URL)

    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "filename*=utf-8''" in disposition
    assert "%E6%B4%BB%E5%8A%A8%E6%83%85%E5%86%B5%E7%BB%9F%E8%AE%A1%E8%A1%A8" in disposition  # 活动情况统计表


# --- who may export what ----------------------------------------------------------------------------

# (target, the users who get 200; every other user gets 404)
TARGETS = {
    "own school": (lambda w: {"level": "school", "unit": w.school.pk}, {"school_admin", "zone_admin"}),
    "other school": (lambda w: {"level": "school", "unit": w.other_school.pk}, {"other_admin"}),
    "own zone": (lambda w: {"level": "zone", "unit": w.school.zone_id}, {"zone_admin"}),
    "other zone": (lambda w: {"level": "zone", "unit": w.other_school.zone_id}, set()),
    "county": (lambda w: {"level": "county"}, set()),
}
BUREAU = {"inspector", "bureau_admin"}
USERS = ("teacher", "head_teacher", "school_admin", "zone_admin", "inspector", "bureau_admin")
USERS += ("other_teacher", "other_admin")


@pytest.mark.parametrize("user_key", USERS)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_role_gets_the_sheet_or_404_with_a_denied_audit_row(sheets, world, login, user_key, target):
    params_of, allowed = TARGETS[target]
    expected = 200 if user_key in allowed | BUREAU else 404
    denied = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED)
    exported = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT)
    denied_before, exported_before = denied.count(), exported.count()

    response = login(world.users()[user_key]).get(URL, params_of(world))

    assert response.status_code == expected, f"{user_key} on {target}"
    assert denied.count() == denied_before + (expected == 404)
    assert exported.count() == exported_before + (expected == 200)
    if expected == 404:
        assert denied.latest("at").user == world.users()[user_key]


@pytest.mark.parametrize(
    ("user_key", "expected_unit"),
    [
        ("school_admin", "城关第一小学"),
        ("other_admin", "东山中心小学"),
        ("zone_admin", "城关片区"),
        ("inspector", "全县"),
        ("bureau_admin", "全县"),
    ],
)
def test_without_a_unit_each_role_gets_their_own(sheets, world, login, user_key, expected_unit):
    ws = download(login(world.users()[user_key])).worksheets[0]

    assert ws["A2"].value == f"报送单位：{expected_unit}"


def test_teachers_get_404_even_for_their_own_school(sheets, world, login):
    for user in (world.teacher, world.head_teacher):
        response = login(user).get(URL)
        assert response.status_code == 404
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED, user=world.teacher).exists()


def test_an_anonymous_visitor_is_sent_to_sign_in(sheets, client):
    response = client.get(URL)

    assert response.status_code == 302
    assert "login" in response["Location"]


def test_an_export_writes_an_audit_row_with_its_filters_and_row_count(sheets, world, login):
    download(login(world.bureau_admin), detail="schools", period=FULL)

    event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
    assert event.user == world.bureau_admin
    assert event.object_type == "ledgers.UnitStatistics"
    assert event.object_id == "county:0"
    assert event.path == URL
    assert event.detail == {
        "filters": {"level": "county", "unit": 0, "period": FULL, "detail": "schools"},
        "rows": 1,  # only the first school has a first-round row
        "format": "xlsx",
    }


def test_a_unit_in_scope_without_computed_figures_gets_404_but_no_denied_row(sheets, world, login):
    UnitStatistics.objects.filter(level=Level.SCHOOL, unit_id=world.school.pk).delete()

    response = login(world.school_admin).get(URL)

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).exists()


@pytest.mark.parametrize("params", [{"level": "class", "unit": 1}, {"level": "school", "unit": "x"}])
def test_a_level_or_unit_that_makes_no_sense_gets_404(sheets, world, login, params):
    assert login(world.bureau_admin).get(URL, params).status_code == 404


def test_without_a_campaign_the_sheet_is_404(world, login):
    assert login(world.bureau_admin).get(URL).status_code == 404


def test_the_exports_queries_do_not_grow_with_the_units_and_never_read_visits(
    sheets, world, login, django_assert_max_num_queries
):
    client = login(world.bureau_admin)
    params = {"detail": "schools"}
    with django_assert_max_num_queries(8) as small:  # session, user, campaign, phases, row, units, feedback, audit
        download(client, **params)
    for index in range(40):
        stats(
            sheets.campaign,
            Level.SCHOOL,
            100_000 + index,
            f"新增学校{index}",
            zone=world.school.zone,
            sort_key=f"T{index:03d}",
            staff_total=index,
        )
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        ws = download(client, **params).worksheets[0]

    assert len(table(ws)) == 2 + 40 + 1
    for query in small.captured_queries + large.captured_queries:
        assert "visits_visit" not in query["sql"], query["sql"]


# --- the management command ------------------------------------------------------------------------


def test_the_command_writes_the_countys_sheet_by_default(sheets, tmp_path):
    output = tmp_path / "县统计表.xlsx"
    out = io.StringIO()

    call_command("export_statistics", "--output", str(output), stdout=out)

    ws = openpyxl.load_workbook(output).worksheets[0]
    assert ws["A1"].value == TITLE
    assert ws["A2"].value == "报送单位：全县"
    assert table(ws) == [figures(sheets.zone), figures(sheets.other_zone), ["合计", *figures(sheets.county)[1:]]]
    assert "2 个单位" in out.getvalue()
    assert AuditEvent.objects.get(action=AuditEvent.Action.EXPORT).username == "manage.py export_statistics"


def test_the_command_exports_a_zone_a_school_every_school_or_a_phase(sheets, world, tmp_path):
    output = tmp_path / "sheet.xlsx"

    call_command("export_statistics", "--output", str(output), "--zone", "Z01", stdout=io.StringIO())
    assert [line[0] for line in table(openpyxl.load_workbook(output).worksheets[0])] == ["城关第一小学", "合计"]

    call_command("export_statistics", "--output", str(output), "--school", "S0001", stdout=io.StringIO())
    ws = openpyxl.load_workbook(output).worksheets[0]
    assert [line[0] for line in table(ws)] == ["三年级（2）班", "四年级（1）班", "合计"]
    assert [cell.value for cell in ws[2] if cell.value][1:3] == ["联系人：孙校长", "电话：0371-66880011"]

    call_command("export_statistics", "--output", str(output), "--schools", stdout=io.StringIO())
    assert [line[0] for line in table(openpyxl.load_workbook(output).worksheets[0])] == [
        "城关第一小学",
        "东山中心小学",
        "合计",
    ]

    call_command("export_statistics", "--output", str(output), "--period", FULL, stdout=io.StringIO())
    assert table(openpyxl.load_workbook(output).worksheets[0])[-1][4] == "10"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--zone", "Z99"], "没有代码为“Z99”的片区"),
        (["--school", "S9999"], "没有代码为“S9999”的学校"),
        (["--period", "autumn"], "没有统计期间“autumn”"),
        (["--zone", "Z01", "--schools"], "--schools 只用于全县统计表"),
    ],
)
def test_the_command_explains_what_it_does_not_know(sheets, tmp_path, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("export_statistics", "--output", str(tmp_path / "x.xlsx"), *arguments)
    assert not (tmp_path / "x.xlsx").exists()


def test_the_command_explains_when_nothing_is_computed_or_there_is_no_campaign(world, tmp_path):
    output = str(tmp_path / "x.xlsx")
    with pytest.raises(CommandError, match="还没有家访活动"):
        call_command("export_statistics", "--output", output)

    factories.CampaignFactory()
    with pytest.raises(CommandError, match="统计数据尚未计算"):
        call_command("export_statistics", "--output", output)
    with pytest.raises(CommandError, match="城关第一小学.*尚未计算"):
        call_command("export_statistics", "--output", output, "--school", "S0001")


# --- LibreOffice ----------------------------------------------------------------------------------


def _soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.libreoffice
def test_the_sheet_opens_in_libreoffice_and_prints_to_pdf(sheets, world, login, tmp_path):
    soffice = _soffice()
    if soffice is None:
        if REQUIRE_LIBREOFFICE:
            pytest.fail(
                "HOMEVISIT_REQUIRE_LIBREOFFICE=1 but LibreOffice is missing (apt-get install libreoffice-calc-nogui)"
            )
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-calc-nogui)")
    UnitStatistics.objects.filter(pk=sheets.other_school.pk).update(name="=1+1")
    response = login(world.bureau_admin).get(URL, {"detail": "schools"})
    source = tmp_path / "sheet.xlsx"
    source.write_bytes(b"".join(response.streaming_content))
    profile = tmp_path / f"lo-profile-{uuid.uuid4().hex}"  # its own profile: parallel runs do not clash

    subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [
            soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path / "out"),
            str(source),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )

    pdf = tmp_path / "out" / "sheet.pdf"
    assert pdf.exists() and pdf.stat().st_size > 0
    assert pdf.read_bytes().startswith(b"%PDF")
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        return
    text = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [pdftotext, "-layout", str(pdf), "-"], check=True, timeout=60, capture_output=True
    ).stdout.decode()
    assert TITLE in text
    assert "合计" in text
    assert "城关第一小学" in text
    assert "87.5%" in text
    assert "=1+1" in text  # shown as text, not computed


# --- with the statistics engine ---------------------------------------------------------------------


def test_the_sheet_shows_what_the_engine_computed_from_students_and_visits(world, login):
    from ledgers.statistics import statistics_compute

    campaign = factories.CampaignFactory()
    phase = factories.PhaseFactory(campaign=campaign, kind=FULL)
    for _ in range(3):
        factories.StudentFactory(school_class=world.school_class)
    factories.StudentFactory(school_class=world.plain_class, status=Student.Status.LEFT)
    visited = list(Student.objects.filter(school_class=world.school_class)[:2])
    when = timezone.now() - datetime.timedelta(days=1)
    for student, status in ((visited[0], Visit.Status.SUBMITTED), (visited[1], Visit.Status.DRAFT)):
        visit = Visit.objects.create(
            school=world.school,
            lead_teacher=world.teacher,
            visited_at=when,
            phase=phase,
            method=Method.IN_HOME,
            status=status,
        )
        visit.students.set([student])
        visit.companions.set([world.head_teacher])
    other_visit = Visit.objects.create(
        school=world.other_school,
        lead_teacher=world.other_teacher,
        visited_at=when,
        phase=phase,
        method=Method.IN_HOME,
        status=Visit.Status.SUBMITTED,
    )
    other_visit.students.set([world.other_student])

    statistics_compute(campaign=campaign)
    ws = download(login(world.bureau_admin), detail="schools").worksheets[0]

    # The count made here, from the definitions.
    def count(school) -> list[str]:
        staff = User.objects.filter(school=school, is_active=True, role__in=(Role.TEACHER, Role.SCHOOL_ADMIN))
        students = Student.objects.filter(school=school, status=Student.Status.ACTIVE)
        submitted = Visit.objects.filter(school=school, status=Visit.Status.SUBMITTED, phase__campaign=campaign)
        took_part = {v.lead_teacher_id for v in submitted} | {
            pk for v in submitted for pk in v.companions.values_list("pk", flat=True)
        }
        seen = students.filter(visits__in=submitted).distinct().count()

        def percent(numerator: int, denominator: int) -> str:
            return f"{numerator * 100 / denominator:.1f}%" if denominator else "—"

        return [
            school.name,
            str(len(took_part)),
            percent(len(took_part), staff.count()),
            str(students.count()),
            str(seen),
            str(students.count()),
            percent(seen, students.count()),
        ]

    mine, other = count(world.school), count(world.other_school)
    assert mine == ["城关第一小学", "2", "66.7%", "5", "1", "5", "20.0%"]
    assert table(ws)[:2] == [mine, other]
    total_teachers = int(mine[1]) + int(other[1])
    total_students = int(mine[3]) + int(other[3])
    assert table(ws)[2][:4] == ["合计", str(total_teachers), f"{total_teachers * 100 / 5:.1f}%", str(total_students)]
