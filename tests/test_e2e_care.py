"""End to end in a real browser on a 390 px phone: a head teacher records today's 每日一问 for an
orphan of the class in one tap from the home page (issue 10). Same browser set-up as
tests/test_e2e_teacher.py (skipped without Chromium unless HOMEVISIT_REQUIRE_BROWSER=1)."""

import datetime

import pytest
from django.utils import timezone

from ledgers.care_models import CalendarOverride, CareAsk
from tests import factories
from tests.test_e2e_teacher import PASSWORD, Taps, browser_page, watch_csp  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_head_teacher_records_todays_ask_in_one_tap_on_a_phone(world, live_server, browser_page):  # noqa: F811
    page = browser_page
    csp_problems = watch_csp(page)
    today = timezone.localdate()
    # Whatever day the test runs on, the school makes it a school day.
    CalendarOverride.objects.create(school=world.school, kind="workday", start=today, end=today, name="上课")
    factories.StudentCategoryFactory(
        student=world.student, category="orphan", start=today - datetime.timedelta(days=60)
    )
    head = world.head_teacher
    head.set_password(PASSWORD)
    head.save()

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", head.username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="登录").tap()
    card = page.locator("[data-testid=care-today]")
    assert "待记录 1" in card.inner_text()
    actions = Taps(page, "care-ask")
    actions.shot("home")
    button = card.locator("[data-testid=ask-face]")
    box = button.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 36  # a thumb's target on a 390 px screen
    actions.tap(button)
    page.wait_for_selector("[data-testid=asked]")
    actions.shot("asked")

    assert actions.taps == 1 and actions.fields == 0
    ask = CareAsk.objects.get()
    assert (ask.student, ask.day, ask.outcome, ask.recorded_by) == (world.student, today, "face", head)
    assert "已全部记录" in page.locator("[data-testid=care-today]").inner_text()
    assert not csp_problems, csp_problems
