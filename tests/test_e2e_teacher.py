"""End to end in a real browser: a teacher on a phone-sized screen goes from 「我的学生」 to a
submitted visit through the safety report, and finds the student marked 已访.

Debian's Chromium driven by Playwright against pytest-django's live server. Each step saves a
screenshot under ``test-artifacts/e2e/``. Without Chromium the test is skipped on a developer's
machine; CI sets ``HOMEVISIT_REQUIRE_BROWSER=1`` and then a missing browser fails it.
"""

import datetime
import io
import time
from pathlib import Path

import pytest
from django.utils import timezone
from PIL import Image

from tests import factories
from tests.browser import ARTIFACTS, PASSWORD
from visits.models import Method, SafetyReport, Visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page(chromium):
    return chromium.phone()


class Taps:
    """Counts what the teacher does: taps (buttons, links, boxes) and fields typed into."""

    def __init__(self, page, name: str) -> None:
        self.page, self.name, self.taps, self.fields, self.step = page, name, 0, 0, 0

    def tap(self, locator) -> None:
        locator.tap()
        self.taps += 1

    def type(self, locator, text: str) -> None:
        locator.fill(text)
        self.fields += 1

    def shot(self, label: str) -> None:
        self.step += 1
        self.page.screenshot(path=ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png", full_page=True)


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "家访合影.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1200), (70, 130, 180)).save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return path


def test_a_teacher_files_a_safety_report_checks_in_and_submits_the_visit_on_a_phone(
    world, live_server, browser_page, chromium, tmp_path
):
    page = browser_page
    teacher = world.teacher
    teacher.phone = "13800138000"
    teacher.set_password(PASSWORD)
    teacher.save()
    student = world.student
    factories.PhaseFactory()  # the first round runs today

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", teacher.username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="登录").tap()

    # 「我的学生」: the student is 未访.
    row = page.locator(".student-row", has_text=student.name)
    assert row.locator("[data-status]").inner_text() == "未访"
    actions = Taps(page, "teacher-visit")
    actions.shot("my-students")
    started = time.monotonic()

    actions.tap(row.locator("a"))
    page.wait_for_url(f"**/students/{student.public_id}/")
    actions.shot("student")

    # 家访报备: opened from the student, everything is filled in already.
    actions.tap(page.get_by_role("link", name="家访报备"))
    page.wait_for_url("**/safety/new/**")
    assert page.locator("#id_address").input_value() == student.address
    assert page.locator("input[name=phone]").input_value() == teacher.phone
    assert page.locator(f"input[name=students][value='{student.public_id}']").is_checked()
    actions.shot("safety-report")
    actions.tap(page.get_by_role("button", name="提交报备"))
    page.wait_for_url("**/safety/mine/")
    assert page.get_by_text("外出家访中").first.is_visible()
    actions.shot("out")

    # 平安返回 in one tap opens the visit record prefilled from the report.
    actions.tap(page.get_by_role("button", name="平安返回"))
    page.wait_for_url("**/visits/new/?report=*")
    assert page.get_by_text("已根据").is_visible()
    assert page.locator("input[name=students]:checked").count() == 1
    assert page.locator("input[name=method][value=in_home]").is_checked()
    actions.shot("visit-prefilled")

    actions.tap(page.get_by_label("学情反馈"))
    actions.tap(page.get_by_label("家庭基本情况"))
    actions.type(page.locator("#id_situation"), "孩子在家按时完成作业，奶奶照顾起居，约定每周电话沟通一次。")
    page.locator("input[name=photos]").set_input_files(_photo(tmp_path))
    actions.taps += 2  # the file input, then the photo in the phone's picker
    actions.tap(page.get_by_label("本人承诺：家访中未接受家长吃请和礼品"))
    actions.shot("visit-filled")
    actions.tap(page.get_by_role("button", name="提交", exact=True))
    page.wait_for_url("**/visits/*/")
    elapsed = time.monotonic() - started
    actions.shot("visit-submitted")

    # Back on 「我的学生」, the student is 已访.
    page.locator(".navbar-brand").tap()
    row = page.locator(".student-row", has_text=student.name)
    assert row.locator("[data-status]").inner_text() == "已访"
    actions.shot("my-students-visited")

    visit = Visit.objects.get()
    assert visit.status == Visit.Status.SUBMITTED and visit.method == Method.IN_HOME
    assert list(visit.students.all()) == [student]
    assert visit.attachments.count() == 1
    report = SafetyReport.objects.get()
    assert report.status == SafetyReport.Status.RETURNED and visit.safety_report == report
    print(f"\n「我的学生」→ submitted visit: {actions.taps} taps, {actions.fields} typed field(s), {elapsed:.1f} s")
    assert chromium.problems == []


def test_the_bureau_dashboard_draws_its_charts_under_the_content_security_policy(
    world, live_server, browser_page, chromium
):
    from ledgers.statistics import statistics_compute, statistics_history_backfill

    page = browser_page
    admin = world.bureau_admin
    admin.set_password(PASSWORD)
    admin.save()
    phase = factories.PhaseFactory()  # the first round runs today
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
    today = timezone.localdate()
    statistics_history_backfill(campaign=phase.campaign, days=[today - datetime.timedelta(days=n) for n in (3, 2, 1)])
    statistics_compute(campaign=phase.campaign)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", admin.username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="登录").tap()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.goto(f"{live_server.url}/statistics/")
    page.wait_for_selector("[data-chart] canvas")

    for kind in ("units", "categories", "trend"):
        chart = page.locator(f"[data-chart={kind}]")
        assert chart.locator("canvas").count() >= 1, kind
        chart.hover()  # the tooltip, drawn on the canvas
        page.wait_for_timeout(300)
    assert page.locator(".progress-bar").evaluate("bar => bar.style.width").endswith("%")
    assert page.locator(".progress-expected").evaluate("mark => mark.style.left").endswith("%")
    page.screenshot(path=ARTIFACTS / "bureau-dashboard.png", full_page=True)
    assert chromium.problems == []
