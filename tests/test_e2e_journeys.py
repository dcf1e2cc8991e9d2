"""Every role's journey in a real browser (issue 13): each test clicks as the person would, asserts
what they see, and on the pages it visits asserts the first-load weight (≤ 300 KB compressed,
empty cache) and the 44 px rule. Screenshots of each step go to ``test-artifacts/e2e/``.

1. A teacher types a visit, loses the connection, saves, comes back online: one visit, with its photo.
2. A teacher's refused submit: the error summary is in view and focused, the photo still attached.
3. A school admin imports a roster with errors, reads them, imports the valid rows, finds the students.
4. A school admin exports the statistics sheet: the file has the figures the dashboard shows.
5. An inspector drills down county → zone → school → class, and gets 404 outside their scope.
"""

import datetime
import io
from pathlib import Path

import openpyxl
import pytest
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from ledgers.statistics import statistics_compute
from schools.models import Role
from students.models import Student
from tests import factories
from tests.browser import ARTIFACTS, PAGE_WEIGHT_LIMIT, PASSWORD
from tests.test_roster_import import HEADER, build_xlsx, student, wrong_check_character
from visits.models import Method, Visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "家访合影.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (70, 130, 180)).save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return path


def _with_password(user):
    user.set_password(PASSWORD)
    user.save()
    return user


def _assert_page_fits(chromium, page, path: str, label: str) -> int:
    """The page's first load is within budget and every target is thumb-sized; returns the weight."""
    weight = chromium.first_load(page, path, label)
    with (ARTIFACTS / "page-weights.txt").open("a", encoding="utf-8") as log:
        log.write(f"{label}\t{path}\t{weight / 1024:.1f} KB\n")
    assert weight <= PAGE_WEIGHT_LIMIT, f"{label}: {weight / 1024:.0f} KB on first load"
    assert chromium.small_targets(page) == [], label
    assert chromium.overflow(page) <= 0, f"{label} scrolls sideways"
    return weight


def _fill_visit(page, tmp_path: Path, *, integrity: bool = True) -> None:
    page.get_by_label("学情反馈").check()
    page.locator("#id_situation").fill("孩子在家按时完成作业，奶奶照顾起居，约定每周电话沟通一次。")
    page.locator("input[name=photos]").set_input_files(_photo(tmp_path))
    if integrity:
        page.get_by_label("本人承诺：家访中未接受家长吃请和礼品").check()


def test_a_teacher_who_loses_the_connection_keeps_the_visit_and_it_is_sent_once_when_back_online(
    world, chromium, tmp_path
):
    factories.PhaseFactory()
    teacher = _with_password(world.teacher)
    page = chromium.phone()
    chromium.login(page, teacher)
    form_path = f"/visits/new/?student={world.student.public_id}"
    page.goto(f"{chromium.url}{form_path}")
    _assert_page_fits(chromium, page, form_path, "visit form")

    # What is typed is kept on the phone: leaving the page and coming back restores it.
    page.locator("#id_situation").fill("先写一半")
    page.wait_for_selector("text=已在本机保存")
    page.goto(f"{chromium.url}/")
    page.goto(f"{chromium.url}{form_path}")
    # The copy comes back from IndexedDB after the page has loaded: wait for the page to say so.
    page.get_by_text("在本机保存的内容").wait_for()
    assert page.locator("#id_situation").input_value() == "先写一半"
    chromium.shot(page, "restored")

    _fill_visit(page, tmp_path)
    page.wait_for_selector("text=已在本机保存")
    page.context.set_offline(True)
    page.get_by_role("button", name="提交", exact=True).tap()
    banner = page.locator("[data-offline-banner]")
    banner.get_by_text("没有网络").wait_for()
    chromium.shot(page, "offline-queued")
    assert Visit.objects.count() == 0

    page.context.set_offline(False)  # the connection returns: the queued record goes by itself
    page.wait_for_url("**/visits/*/")
    assert page.get_by_text("家访记录已提交").is_visible()
    chromium.shot(page, "sent")

    visit = Visit.objects.get()
    assert visit.status == Visit.Status.SUBMITTED
    assert visit.attachments.count() == 1
    assert list(visit.students.all()) == [world.student]
    # The copy is gone: the form opens empty again.
    page.goto(f"{chromium.url}{form_path}")
    assert page.locator("#id_situation").input_value() == ""
    assert chromium.problems == []


def test_a_refused_submit_shows_its_errors_at_once_and_keeps_the_photo(world, chromium, tmp_path):
    factories.PhaseFactory()
    teacher = _with_password(world.teacher)
    page = chromium.phone()
    chromium.login(page, teacher)
    page.goto(f"{chromium.url}/visits/new/?student={world.student.public_id}")
    expect(page.locator("[data-offline-banner]")).to_be_hidden()  # nothing kept yet: no banner
    _fill_visit(page, tmp_path, integrity=False)
    page.wait_for_selector("text=已在本机保存")
    page.get_by_role("button", name="提交", exact=True).tap()

    summary = page.locator("[data-error-summary]")
    summary.wait_for()
    assert summary.evaluate("element => document.activeElement === element")
    page.wait_for_load_state("load")
    assert summary.evaluate("element => element.getBoundingClientRect().top >= -1"), page.evaluate("scrollY")
    assert summary.evaluate("element => element.getBoundingClientRect().top < window.innerHeight")
    assert "廉洁承诺" in summary.inner_text()
    page.wait_for_selector("text=已从本机重新选好 1 个")
    assert page.locator("input[name=photos]").evaluate("input => input.files.length") == 1
    chromium.shot(page, "refused")
    assert Visit.objects.count() == 0

    page.get_by_label("本人承诺：家访中未接受家长吃请和礼品").check()
    page.get_by_role("button", name="提交", exact=True).tap()
    page.wait_for_url("**/visits/*/")
    visit = Visit.objects.get()
    assert visit.status == Visit.Status.SUBMITTED and visit.attachments.count() == 1
    assert chromium.problems == []


def test_the_consent_requirement_shows_as_soon_as_a_special_student_and_an_in_home_visit_are_chosen(world, chromium):
    factories.PhaseFactory()
    factories.StudentCategoryFactory(student=world.student, category="disability")
    teacher = _with_password(world.teacher)
    page = chromium.phone()
    chromium.login(page, teacher)
    page.goto(f"{chromium.url}/visits/new/?student={world.student.public_id}")
    consent_mark = page.locator("#field-consent_recorded .required-mark")
    expect(consent_mark).to_be_visible()  # 上门家访 is the default method
    page.locator("label[for=id_method_2]").tap()  # another method: consent not required
    expect(consent_mark).to_be_hidden()
    page.locator("label[for=id_method_0]").tap()
    expect(consent_mark).to_be_visible()
    assert page.locator("#field-situation .required-mark").is_visible()
    assert page.locator("#field-integrity_declared .required-mark").is_visible()


def test_a_school_admin_imports_a_roster_with_errors_and_finds_the_valid_students(world, chromium, tmp_path):
    admin = _with_password(world.school_admin)
    good = [student(n) for n in range(1, 4)]
    bad = wrong_check_character(student(9))
    path = build_xlsx(tmp_path / "三年级名册.xlsx", HEADER, [*good, bad])
    page = chromium.desktop()
    chromium.login(page, admin)
    page.get_by_role("button", name="名册管理").click()
    page.locator(".dropdown-menu").get_by_role("link", name="导入学生名册").click()
    _assert_page_fits(chromium, page, page.url.removeprefix(chromium.url), "roster upload")
    page.locator("input[type=file]").set_input_files(path)
    page.get_by_role("button", name="上传并校验").click()
    page.get_by_text("校验位不正确").first.wait_for()
    chromium.shot(page, "roster-errors")
    assert page.get_by_text("第 5 行").first.is_visible() or page.get_by_text("5").first.is_visible()
    page.get_by_role("button", name="只导入 3 行有效数据").click()
    page.get_by_text("已导入").first.wait_for()
    chromium.shot(page, "roster-imported")

    page.get_by_role("link", name="学生").first.click()
    for row in good:
        assert page.get_by_text(row["姓名"]).first.is_visible()
    assert not Student.objects.filter(name=bad["姓名"]).exists()
    assert Student.objects.filter(school=world.school, name__in=[r["姓名"] for r in good]).count() == 3


def _submitted_visit(world, phase) -> Visit:
    """Yesterday's in-home visit of the teacher to the world's student."""
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=timezone.now() - datetime.timedelta(days=1),
        phase=phase,
        method=Method.IN_HOME,
        status=Visit.Status.SUBMITTED,
        submitted_at=timezone.now() - datetime.timedelta(days=1),
    )
    visit.students.set([world.student])
    return visit


def test_a_school_admin_downloads_the_statistics_sheet_with_the_figures_the_dashboard_shows(world, chromium, tmp_path):
    phase = factories.PhaseFactory()
    _submitted_visit(world, phase)
    statistics_compute(campaign=phase.campaign)
    admin = _with_password(world.school_admin)
    page = chromium.desktop()
    chromium.login(page, admin)
    page.get_by_role("link", name="统计看板").click()
    page.wait_for_selector("[data-chart] canvas")
    dashboard_path = page.url.removeprefix(chromium.url)
    _assert_page_fits(chromium, page, dashboard_path, "school dashboard")
    chromium.shot(page, "school-dashboard")
    card = page.locator(".card", has_text="家访率（学生覆盖）").first
    shown = card.locator("[data-testid=headline]").inner_text().strip()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="导出统计表").first.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    workbook = openpyxl.load_workbook(saved)
    sheet = workbook.worksheets[0]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    # A school's sheet lists its classes; the school's own figures are the 合计 row (DESIGN §7).
    school_row = next((row for row in rows if row[0] == "合计"), None)
    assert school_row, rows
    # 单位, 参与家访教师数量, 走访率, 家访学生数量, 已走访人数, 学生总数, 家访率 (DESIGN §7)
    students_total = Student.objects.filter(school=world.school, status=Student.Status.ACTIVE).count()
    assert school_row[4] == 1 and school_row[5] == students_total
    coverage = school_row[6]
    assert shown == (f"{coverage * 100:.1f}%" if isinstance(coverage, float) else str(coverage))

    # The same dashboard on a phone: nothing scrolls sideways, the charts fit.
    phone = chromium.phone()
    chromium.login(phone, admin)
    phone.goto(f"{chromium.url}{dashboard_path}")
    phone.wait_for_selector("[data-chart] canvas")
    assert chromium.overflow(phone) <= 0
    chromium.shot(phone, "school-dashboard-phone")


def test_an_inspector_drills_down_to_a_class_and_gets_404_for_a_page_outside_their_role(world, chromium):
    phase = factories.PhaseFactory()
    statistics_compute(campaign=phase.campaign)
    inspector = _with_password(world.inspector)
    assert inspector.role == Role.INSPECTOR
    page = chromium.desktop()
    chromium.login(page, inspector)
    page.goto(f"{chromium.url}/statistics/")
    _assert_page_fits(chromium, page, "/statistics/", "county dashboard")
    chromium.shot(page, "county")
    page.get_by_role("link", name=world.school.zone.name).first.click()
    page.wait_for_url(f"**/statistics/zones/{world.school.zone_id}/**")
    chromium.shot(page, "zone")
    assert chromium.overflow(page) <= 0
    page.get_by_role("link", name=world.school.name).first.click()
    page.wait_for_url(f"**/statistics/schools/{world.school.pk}/**")
    chromium.shot(page, "school")
    assert chromium.overflow(page) <= 0
    page.get_by_role("link", name=world.school_class.name).first.click()
    page.wait_for_url("**/classes/**")
    chromium.shot(page, "class")
    assert chromium.overflow(page) <= 0
    assert page.get_by_role("heading", name=world.school_class.name).first.is_visible()

    # Inspectors read every school (DESIGN §2) but change nothing: a visit's edit page is not theirs.
    visit = _submitted_visit(world, phase)
    assert page.goto(f"{chromium.url}/visits/{visit.public_id}/edit/").status == 404
    assert page.get_by_text("页面不存在").first.is_visible() or page.get_by_text("404").first.is_visible()
    chromium.shot(page, "not-found")
    assert [p for p in chromium.problems if "status of 404" not in p] == []  # the 404 was the point


def test_a_zone_admin_gets_404_for_a_student_of_another_zone(world, chromium):
    zone_admin = _with_password(world.zone_admin)
    page = chromium.desktop()
    chromium.login(page, zone_admin)
    assert page.goto(f"{chromium.url}/students/{world.student.public_id}/").status == 200
    assert page.goto(f"{chromium.url}/students/{world.other_student.public_id}/").status == 404
