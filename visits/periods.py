"""Which period a visit counts in: one definition for the statistics engine and the teacher's pages.

DESIGN §1 and §7: a visit belongs to the phase whose dates contain its date — always, so when the
bureau moves a phase's dates the visits move with it (nothing here reads ``Visit.phase``, which is
kept only to show the phase on a record). The whole campaign (全年) is every day from the first
phase's start to the last phase's end, the days between phases included. Days are local days
(``Asia/Shanghai``); a window is the half-open range of aware datetimes
``[start_at, end_at)`` from the first day's midnight to the midnight after the last day.
"""

import datetime
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from schools.models import Campaign, Phase, SchoolYear

# The period code of the whole campaign (the other periods are a ``Phase.Kind`` value).
WHOLE_CAMPAIGN = "campaign"


def start_of(day: datetime.date) -> datetime.datetime:
    """Local midnight at the start of ``day``, aware."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())


@dataclass(frozen=True)
class Window:
    """A period: the whole campaign (``index`` 0, ``phase`` None) or one phase (``index`` 1, 2, …
    in date order). ``first`` and ``last`` are its first and last day (inclusive)."""

    index: int
    code: str
    phase: Phase | None
    first: datetime.date
    last: datetime.date

    @property
    def revisit(self) -> bool:
        """The revisit round counts only the focus and special students (DESIGN §7)."""
        return self.phase is not None and self.phase.kind == Phase.Kind.REVISIT

    @property
    def start_at(self) -> datetime.datetime:
        return start_of(self.first)

    @property
    def end_at(self) -> datetime.datetime:
        """Exclusive: midnight after the last day."""
        return start_of(self.last + datetime.timedelta(days=1))

    def contains(self, moment: datetime.datetime) -> bool:
        return self.start_at <= moment < self.end_at

    def q(self, prefix: str = "") -> Q:
        """``visited_at`` in this window (``prefix`` such as ``"visit__"`` for a related visit)."""
        return Q(**{f"{prefix}visited_at__gte": self.start_at, f"{prefix}visited_at__lt": self.end_at})


def campaign_windows(campaign: Campaign) -> list[Window]:
    """The whole campaign first, then each phase in date order; empty when it has no phase."""
    phases = sorted(campaign.phases.all(), key=lambda p: p.start)
    if not phases:
        return []
    whole = Window(index=0, code=WHOLE_CAMPAIGN, phase=None, first=phases[0].start, last=phases[-1].end)
    return [whole] + [
        Window(index=i, code=p.kind, phase=p, first=p.start, last=p.end) for i, p in enumerate(phases, start=1)
    ]


def window_of_day(windows: list[Window], day: datetime.date) -> Window | None:
    """The phase window that contains ``day`` (None between phases or outside the campaign)."""
    return next((w for w in windows[1:] if w.first <= day <= w.last), None)


def counted_window(windows: list[Window], *, today: datetime.date, revisit_student: bool) -> Window | None:
    """The period whose 已走访 a student's 「我的学生」 status answers today: during the revisit round,
    the round itself for a focus or special student (家访学生数量 of that round); otherwise the
    whole campaign. The statistics row that holds the same count is the class's row of this period."""
    if not windows:
        return None
    phase = window_of_day(windows, today)
    if phase is not None and phase.revisit and revisit_student:
        return phase
    return windows[0]


def school_year_window(campaign: Campaign, today: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The school year the 2-in-home-visits rule counts in (DESIGN §3): the campaign's, else the
    one containing today, else the calendar year of the campaign; as ``[start, end)``."""
    year = campaign.school_year or SchoolYear.current(today)
    if year is None:
        return start_of(datetime.date(campaign.year, 1, 1)), start_of(datetime.date(campaign.year + 1, 1, 1))
    return start_of(year.start), start_of(year.end + datetime.timedelta(days=1))


def campaign_span_text(campaign: Campaign | None) -> str:
    """The form's note on which dates count (DESIGN §1, §7), or "" without a campaign."""
    windows = campaign_windows(campaign) if campaign else []
    if not windows:
        return ""
    whole = windows[0]
    return (
        f"本年度家访活动：{whole.first:%Y年%m月%d日}至{whole.last:%Y年%m月%d日}（含各阶段之间的日子）；"
        "日期不在此期间的家访可以保存，但不计入任何统计期间。"
    )


def outside_campaign_notice(moment: datetime.datetime) -> str:
    """What to tell a teacher whose visit is dated in no period of the campaign, or ""."""
    day = timezone.localdate(moment)
    campaign = Campaign.current(day)
    windows = campaign_windows(campaign) if campaign else []
    if not windows or windows[0].first <= day <= windows[0].last:
        return ""
    whole = windows[0]
    return (
        f"家访日期 {day:%Y-%m-%d} 不在本年度家访活动期间（{whole.first:%Y-%m-%d} 至 {whole.last:%Y-%m-%d}），"
        "这次家访已保存，但不计入任何统计期间。"
    )
