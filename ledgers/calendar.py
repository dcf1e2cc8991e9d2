"""The school calendar (DESIGN §3): which days are school days for a school.

A school day is a weekday of the school's terms, less China's public holidays, plus the make-up
workdays (调休) — taken from the ``chinese-calendar`` package — less the county's and the school's
local holidays and closures, plus their extra school days. The package knows the years up to its
release; for a later year every weekday counts and the calendar says so (``unknown_years``).

Terms: a school's own terms if it set any, else the county's, else ``DEFAULT_TERMS``.
"""

import datetime
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

import chinese_calendar
from django.core.exceptions import ValidationError
from django.db import transaction

from ledgers.care_models import CalendarOverride
from schools.models import AuditEvent, Role, School, User
from schools.services import audit_event_record

# (month, day) of the first and last day of each term when neither the bureau nor the school set one:
# the autumn term runs into January of the next year.
DEFAULT_TERMS = (("秋季学期", (9, 1), (1, 20)), ("春季学期", (2, 20), (7, 10)))
NAME_MAX = 50
OVERRIDE_SPAN_MAX = datetime.timedelta(days=366)


@dataclass(frozen=True)
class Term:
    name: str
    start: datetime.date
    end: datetime.date
    source: str  # 学校 / 教育局 / 默认


@dataclass
class SchoolCalendar:
    """One school's calendar; build it with ``school_calendar`` (one query)."""

    school_id: int | None
    overrides: list[CalendarOverride]
    unknown_years: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        own_terms = [o for o in self.overrides if o.kind == CalendarOverride.Kind.TERM and o.school_id]
        county_terms = [o for o in self.overrides if o.kind == CalendarOverride.Kind.TERM and not o.school_id]
        chosen = own_terms or county_terms
        self._terms = [Term(o.name, o.start, o.end, "学校" if o.school_id else "教育局") for o in chosen]
        self._default_terms = not chosen
        off = (CalendarOverride.Kind.HOLIDAY, CalendarOverride.Kind.CLOSURE)
        self._off = [o for o in self.overrides if o.kind in off]
        self._extra = [o for o in self.overrides if o.kind == CalendarOverride.Kind.WORKDAY]
        self._cache: dict[datetime.date, bool] = {}

    @property
    def uses_default_terms(self) -> bool:
        return self._default_terms

    def terms_around(self, day: datetime.date) -> list[Term]:
        """The terms of the school year holding ``day`` (and those next to it)."""
        if not self._default_terms:
            return [
                t
                for t in self._terms
                if t.end >= day - datetime.timedelta(days=400) and t.start <= day + datetime.timedelta(days=400)
            ]
        terms = []
        for year in (day.year - 1, day.year):
            for name, (sm, sd), (em, ed) in DEFAULT_TERMS:
                start = datetime.date(year, sm, sd)
                end = datetime.date(year + (1 if (em, ed) < (sm, sd) else 0), em, ed)
                terms.append(Term(name, start, end, "默认"))
        return terms

    def in_term(self, day: datetime.date) -> bool:
        return any(t.start <= day <= t.end for t in self.terms_around(day))

    def statutory_workday(self, day: datetime.date) -> bool:
        """A working day by the State Council's calendar (调休 included); a weekday for a year the
        package does not know, noted in ``unknown_years``."""
        workday = _statutory_workday(day)
        if workday is None:
            self.unknown_years.add(day.year)
            return day.weekday() < 5
        return workday

    def is_school_day(self, day: datetime.date) -> bool:
        if day in self._cache:
            return self._cache[day]
        if any(o.start <= day <= o.end for o in self._extra):
            result = True
        elif any(o.start <= day <= o.end for o in self._off):
            result = False
        else:
            result = self.in_term(day) and self.statutory_workday(day)
        self._cache[day] = result
        return result

    def off_reason(self, day: datetime.date) -> str:
        """Why a day is not a school day, in words for the calendar page."""
        for o in self._off:
            if o.start <= day <= o.end:
                return f"{o.get_kind_display()}：{o.name}"
        if not self.in_term(day):
            return "假期（不在学期内）"
        try:
            on_holiday, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            return "周末"
        if on_holiday and name:
            return f"法定节假日：{HOLIDAY_NAMES.get(name, name)}"
        return "周末"

    def school_days(self, start: datetime.date, end: datetime.date) -> list[datetime.date]:
        """School days from ``start`` to ``end``, both included."""
        days = []
        day = start
        while day <= end:
            if self.is_school_day(day):
                days.append(day)
            day += datetime.timedelta(days=1)
        return days

    def last_school_day_before(self, day: datetime.date, *, limit_days: int = 60) -> datetime.date | None:
        for back in range(1, limit_days + 1):
            candidate = day - datetime.timedelta(days=back)
            if self.is_school_day(candidate):
                return candidate
        return None

    def year_start(self, today: datetime.date) -> datetime.date:
        """The first day of the first term of the school year holding ``today``."""
        starts = [t.start for t in self.terms_around(today) if t.start <= today]
        autumn = [s for s in starts if s.month >= 8]
        return max(autumn) if autumn else (max(starts) if starts else today.replace(month=1, day=1))


@functools.lru_cache(maxsize=4096)
def _statutory_workday(day: datetime.date) -> bool | None:
    """chinese_calendar.is_workday, remembered (the package's tables are fixed at its release);
    None for a year it does not know."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return None


HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利纪念日",
}


def school_calendar(school: School | int | None) -> SchoolCalendar:
    """The calendar of a school (or the county's when ``school`` is None). One query."""
    school_id = school.pk if isinstance(school, School) else school
    overrides = CalendarOverride.objects.filter(school__isnull=True)
    if school_id:
        overrides = CalendarOverride.objects.for_school(school_id)
    return SchoolCalendar(school_id=school_id, overrides=list(overrides))


def school_calendars(school_ids: Iterable[int]) -> dict[int, SchoolCalendar]:
    """Calendars of several schools from one query."""
    school_ids = list(school_ids)
    rows = list(CalendarOverride.objects.filter(school__isnull=True)) + list(
        CalendarOverride.objects.filter(school_id__in=school_ids)
    )
    calendars = {
        sid: SchoolCalendar(school_id=sid, overrides=[o for o in rows if o.school_id in (None, sid)])
        for sid in school_ids
    }
    # Schools with the same overrides (most keep the county's) share one memo of their days.
    shared: dict[tuple[int, ...], SchoolCalendar] = {}
    for calendar in calendars.values():
        first = shared.setdefault(tuple(o.pk for o in calendar.overrides), calendar)
        calendar._cache, calendar.unknown_years = first._cache, first.unknown_years
    return calendars


def week_start(day: datetime.date) -> datetime.date:
    return day - datetime.timedelta(days=day.weekday())


# --- writes ------------------------------------------------------------------------------------


def calendar_override_add(
    *, school: School | None, kind: str, start: datetime.date, end: datetime.date, name: str, acting_user: User
) -> CalendarOverride:
    """Add a term, local holiday, closure or extra school day: the bureau admin for the county
    (``school`` None), a school admin for the school. Raises ValidationError with a field each."""
    if school is None and acting_user.role != Role.BUREAU_ADMIN:
        raise ValidationError("只有教育局管理员可以调整全县校历。")
    if school is not None and (acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != school.pk):
        raise ValidationError("只有本校的学校管理员可以调整本校校历。")
    name = (name or "").strip()
    errors = {}
    if kind not in CalendarOverride.Kind.values:
        errors["kind"] = "请选择调整类型。"
    if not name:
        errors["name"] = "请填写名称，例如“秋季学期”或“县运动会停课”。"
    if start and end and end < start:
        errors["end"] = "结束日期不能早于开始日期。"
    elif start and end and end - start > OVERRIDE_SPAN_MAX:
        errors["end"] = "一次调整不能超过一年。"
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        override = CalendarOverride(school=school, kind=kind, start=start, end=end, name=name, created_by=acting_user)
        override.full_clean()
        override.save()
        _audit(override, acting_user=acting_user, event="added")
    return override


def calendar_override_remove(*, override: CalendarOverride, acting_user: User) -> None:
    """Remove an override; the same people who may add it."""
    if override.school_id is None and acting_user.role != Role.BUREAU_ADMIN:
        raise ValidationError("只有教育局管理员可以调整全县校历。")
    if override.school_id is not None and (
        acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != override.school_id
    ):
        raise ValidationError("只有本校的学校管理员可以调整本校校历。")
    with transaction.atomic():
        _audit(override, acting_user=acting_user, event="removed")
        override.delete()


def _audit(override: CalendarOverride, *, acting_user: User, event: str) -> None:
    audit_event_record(
        action=AuditEvent.Action.CHANGE,
        user=acting_user,
        object_type="ledgers.CalendarOverride",
        object_id=str(override.pk),
        detail={
            "event": event,
            "school": override.school_id,
            "kind": override.kind,
            "start": override.start.isoformat(),
            "end": override.end.isoformat(),
            "name": override.name,
        },
    )
