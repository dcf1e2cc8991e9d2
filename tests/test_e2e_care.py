"""End to end in a real browser on a 390 px phone (issue 13's journey 6): a head teacher records
today's 每日一问 for an orphan of the class in one tap from the home page (issue 10). The page's
first-load weight and the 44 px rule are asserted as in the other journeys (tests/browser.py)."""

import datetime

import pytest
from django.utils import timezone

from ledgers.care_models import CalendarOverride, CareAsk
from tests import factories
from tests.browser import PAGE_WEIGHT_LIMIT, PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_head_teacher_records_todays_ask_in_one_tap_on_a_phone(world, chromium):
    today = timezone.localdate()
    # Whatever day the test runs on, the school makes it a school day.
    CalendarOverride.objects.create(school=world.school, kind="workday", start=today, end=today, name="上课")
    factories.StudentCategoryFactory(
        student=world.student, category="orphan", start=today - datetime.timedelta(days=60)
    )
    head = world.head_teacher
    head.set_password(PASSWORD)
    head.save()

    page = chromium.phone()
    chromium.login(page, head)
    card = page.locator("[data-testid=care-today]")
    assert "待记录 1" in card.inner_text()
    assert chromium.first_load(page, "/", "head teacher home") <= PAGE_WEIGHT_LIMIT
    assert chromium.small_targets(page) == []
    assert chromium.overflow(page) <= 0
    chromium.shot(page, "home")

    card.locator("[data-testid=ask-face]").tap()  # the one tap
    page.wait_for_selector("[data-testid=asked]")
    chromium.shot(page, "asked")

    ask = CareAsk.objects.get()
    assert (ask.student, ask.day, ask.outcome, ask.recorded_by) == (world.student, today, "face", head)
    assert "已全部记录" in page.locator("[data-testid=care-today]").inner_text()
    assert chromium.problems == []
