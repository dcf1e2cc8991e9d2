"""Which target applies to a unit (issue 12: targets per unit). A school follows its own target, else
its zone's, else the county's, else the campaign's ``coverage_target`` (with 100% for the rest); a
class follows its school. One query for every unit of a page."""

from collections.abc import Iterable
from dataclasses import dataclass

from schools.models import Campaign, CampaignTarget

SOURCES = {"school": "学校目标", "zone": "片区目标", "county": "全县目标", "campaign": "活动默认目标"}


@dataclass(frozen=True)
class Target:
    coverage: int
    participation: int
    focus_coverage: int
    special_in_home: int
    source: str  # a key of SOURCES

    @property
    def source_label(self) -> str:
        return SOURCES[self.source]


def targets_for(campaign: Campaign, units: Iterable) -> dict[tuple[str, int], Target]:
    """{(level, unit id): Target} for unit rows carrying ``level``, ``unit_id``, ``zone_id`` and
    ``school_id`` (``ledgers.UnitStatistics``); levels are "county", "zone", "school", "class"."""
    rows = list(CampaignTarget.objects.filter(campaign=campaign))
    county = next((t for t in rows if t.zone_id is None and t.school_id is None), None)
    zones = {t.zone_id: t for t in rows if t.zone_id is not None}
    schools = {t.school_id: t for t in rows if t.school_id is not None}
    default = Target(campaign.coverage_target, 100, 100, 100, "campaign")
    if county is not None:
        default = _target(county, "county")
    result = {}
    for unit in units:
        target = default
        if unit.level != "county" and unit.zone_id in zones:
            target = _target(zones[unit.zone_id], "zone")
        if unit.level in ("school", "class") and unit.school_id in schools:
            target = _target(schools[unit.school_id], "school")
        result[unit.level, unit.unit_id] = target
    return result


def _target(row: CampaignTarget, source: str) -> Target:
    return Target(row.coverage, row.participation, row.focus_coverage, row.special_in_home, source)
