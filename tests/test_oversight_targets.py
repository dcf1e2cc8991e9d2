"""Targets per unit (issue 12): the bureau sets target rates for the county, a zone or a school; the
dashboards' progress line, 落后进度 marks and ranking use each unit's own target and say which."""

import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from oversight.services import target_set
from schools.models import Campaign
from schools.targets import targets_for
from tests.test_dashboards import EXPECTED_TODAY, FULL, _frozen, stats  # noqa: F401 - the fixtures (frozen on 16 June)

RATES = {"participation": 100, "focus_coverage": 100, "special_in_home": 100}


def test_a_school_behind_the_county_line_is_on_track_against_its_own_target(world, stats, login):  # noqa: F811
    campaign = Campaign.objects.get()
    target_set(campaign=campaign, school=world.other_school, coverage=35, acting_user=world.bureau_admin, **RATES)
    response = login(world.bureau_admin).get(reverse("statistics_county"), {"period": FULL})
    lines = {line.name: line for line in response.context["children_table"].lines}
    assert not lines[world.other_school.name].behind, "20.0% against 35% × the share of the phase gone by (18.7%)"
    html = response.content.decode()
    assert "学校目标 35%" in html and f'今天应达 <strong data-testid="expected">{EXPECTED_TODAY}' in html

    school_page = login(world.other_admin).get(reverse("statistics_school", args=[world.other_school.pk]))
    assert school_page.context["target"] == 35 and "（学校目标）" in school_page.content.decode()


def test_a_zone_target_applies_to_its_schools_and_a_school_target_overrides_it(world, stats):  # noqa: F811
    campaign = Campaign.objects.get()
    target_set(campaign=campaign, coverage=100, acting_user=world.bureau_admin, **RATES)
    target_set(campaign=campaign, zone=world.school.zone, coverage=95, acting_user=world.bureau_admin, **RATES)
    target_set(campaign=campaign, zone=world.school.zone, coverage=92, acting_user=world.bureau_admin, **RATES)
    from ledgers.models import UnitStatistics

    rows = list(UnitStatistics.objects.filter(campaign=campaign, period=FULL))
    targets = targets_for(campaign, rows)
    assert targets["school", world.school.pk].coverage == 92
    assert targets["school", world.school.pk].source_label == "片区目标"
    assert targets["school", world.other_school.pk].source_label == "全县目标"
    assert targets["class", world.school_class.pk].coverage == 92
    target_set(campaign=campaign, school=world.school, coverage=80, acting_user=world.bureau_admin, **RATES)
    assert targets_for(campaign, rows)["school", world.school.pk].source_label == "学校目标"


def test_after_the_phase_a_unit_is_behind_only_if_it_missed_its_target(world, stats, login):  # noqa: F811
    campaign = Campaign.objects.get()
    phase_end = campaign.phases.get(kind=FULL).end
    target_set(campaign=campaign, school=world.school, coverage=75, acting_user=world.bureau_admin, **RATES)
    target_set(campaign=campaign, school=world.other_school, coverage=25, acting_user=world.bureau_admin, **RATES)
    with time_machine.travel(timezone.make_aware(timezone.datetime.combine(phase_end, timezone.datetime.min.time()))):
        response = login(world.bureau_admin).get(reverse("statistics_county"), {"period": FULL})
    lines = {line.name: line for line in response.context["children_table"].lines}
    assert not lines[world.school.name].behind, "75.0% meets its 75% target"
    assert lines[world.other_school.name].behind, "20.0% misses its 25% target"


def test_only_the_bureau_admin_sets_targets(world, login):
    campaign = Campaign.objects.create(year=2026, name="活动")
    try:
        target_set(campaign=campaign, coverage=90, acting_user=world.inspector, **RATES)
    except ValidationError:
        pass
    else:
        raise AssertionError("an inspector set a target")
    response = login(world.inspector).post(reverse("target_list"), {"coverage": 90, **RATES})
    assert response.status_code == 404
