"""Quality flags (质量提示) that point back-checks at records worth a call (issue 12, DESIGN §6).

A flag is a reason to look, not a finding: each comes with a sentence in Chinese saying what was
seen. They are computed per school in a fixed number of queries (four), whatever its number of
visits: one slim read of the school's submitted records (id, teacher, visit time, entry time,
method), one grouping of identical notes and its ids, and one anti-join for in-home visits without a
photo; the rest is arithmetic over the slim rows.

When a record was entered is the earlier of its creation and its submission: a record always exists
before it is submitted, but rows written in bulk (imports, the demo) carry the time they were
written as their creation, and their submission time is the one that says when the teacher filed.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from schools.models import School, User
from visits.models import Attachment, Method, Visit

LATE_ENTRY_DAYS = 7  # entered more than a week after the visit date
IN_HOME_PER_DAY = 5  # in-home visits by one teacher on one day
OVERLAP_MINUTES = 30  # an in-person visit takes at least this long
SAME_NOTES_VISITS = 3  # identical notes text on this many separate visits
SAME_NOTES_MIN_LENGTH = 10  # shorter notes (「电话沟通。」) are alike by nature
BURST_RECORDS = 5  # records entered by one teacher ...
BURST_MINUTES = 10  # ... within this many minutes
IN_PERSON = (Method.IN_HOME, Method.NEARBY)


class Code:
    LATE_ENTRY = "late_entry"
    MANY_IN_DAY = "many_in_day"
    OVERLAP = "overlap"
    NO_PHOTO = "no_photo"
    SAME_NOTES = "same_notes"
    BURST = "burst"

    LABELS = {
        LATE_ENTRY: "补录过晚",
        MANY_IN_DAY: "一天上门过多",
        OVERLAP: "时间重叠",
        NO_PHOTO: "上门无照片",
        SAME_NOTES: "记录内容雷同",
        BURST: "短时集中录入",
    }


@dataclass(frozen=True)
class Flag:
    code: str
    explanation: str

    @property
    def label(self) -> str:
        return Code.LABELS[self.code]


def school_flags(school: School, *, teacher: User | None = None) -> dict[int, list[Flag]]:
    """{visit id: [Flag, ...]} for the school's submitted visits that raise at least one flag; with
    ``teacher``, only that teacher's records (notes are still compared across the whole school)."""
    visits = Visit.objects.filter(school=school, status=Visit.Status.SUBMITTED)
    own = visits.filter(lead_teacher=teacher) if teacher is not None else visits
    flags: dict[int, list[Flag]] = defaultdict(list)
    rows = sorted(
        (
            (pk, teacher, visited_at, min(created_at, submitted_at or created_at), method)
            for pk, teacher, visited_at, created_at, submitted_at, method in own.values_list(
                "pk", "lead_teacher_id", "visited_at", "created_at", "submitted_at", "method"
            )
        ),
        key=lambda row: (row[1], row[3]),
    )
    _late_entries(rows, flags)
    _busy_days_and_overlaps(rows, flags)
    _bursts(rows, flags)
    _no_photo(own, flags)
    _same_notes(visits, own, flags)
    return dict(flags)


def visit_flags(visit: Visit) -> list[Flag]:
    """The flags of one record (its teacher's records are read to judge it)."""
    if not visit.is_submitted:
        return []
    return school_flags(visit.school, teacher=visit.lead_teacher).get(visit.pk, [])


def flag_counts(flags: dict[int, list[Flag]]) -> dict[str, int]:
    """Records per flag code, in the order of ``Code.LABELS``."""
    counts = dict.fromkeys(Code.LABELS, 0)
    for items in flags.values():
        for code in {flag.code for flag in items}:
            counts[code] += 1
    return counts


def _late_entries(rows, flags) -> None:
    for pk, _teacher, visited_at, created_at, _method in rows:
        late = timezone.localdate(created_at) - timezone.localdate(visited_at)
        if late.days > LATE_ENTRY_DAYS:
            flags[pk].append(
                Flag(
                    Code.LATE_ENTRY,
                    f"{timezone.localtime(created_at):%Y-%m-%d} 才录入，比家访日期晚 {late.days} 天"
                    f"（超过 {LATE_ENTRY_DAYS} 天的补录宜回访核实）。",
                )
            )


def _busy_days_and_overlaps(rows, flags) -> None:
    by_teacher_day: dict[tuple, list] = defaultdict(list)
    for pk, teacher, visited_at, _created, method in rows:
        if method in IN_PERSON:
            by_teacher_day[teacher, timezone.localdate(visited_at)].append((timezone.localtime(visited_at), pk, method))
    for (_teacher, day), items in by_teacher_day.items():
        in_home = [item for item in items if item[2] == Method.IN_HOME]
        if len(in_home) >= IN_HOME_PER_DAY:
            for _at, pk, _method in in_home:
                flags[pk].append(
                    Flag(
                        Code.MANY_IN_DAY,
                        f"同一教师 {day:%m月%d日} 一天记录了 {len(in_home)} 次上门家访"
                        f"（达到 {IN_HOME_PER_DAY} 次宜回访核实）。",
                    )
                )
        items.sort()
        for (at, pk, _m), (next_at, next_pk, _n) in zip(items, items[1:], strict=False):
            if next_at - at < datetime.timedelta(minutes=OVERLAP_MINUTES):
                for this, other in ((pk, next_at), (next_pk, at)):
                    flags[this].append(
                        Flag(
                            Code.OVERLAP,
                            f"与同一教师 {other:%H:%M} 的另一次上门或就近家访"
                            f"相隔不到 {OVERLAP_MINUTES} 分钟，时间重叠。",
                        )
                    )


def _bursts(rows, flags) -> None:
    """Sliding window over each teacher's entry times (rows come ordered by teacher, entry time)."""
    window = datetime.timedelta(minutes=BURST_MINUTES)
    by_teacher: dict[int, list] = defaultdict(list)
    for pk, teacher, _visited, created_at, _method in rows:
        by_teacher[teacher].append((created_at, pk))
    for items in by_teacher.values():
        in_burst: set[int] = set()
        start = 0
        for end in range(len(items)):
            while items[end][0] - items[start][0] > window:
                start += 1
            if end - start + 1 >= BURST_RECORDS:
                in_burst.update(pk for _at, pk in items[start : end + 1])
        for pk in in_burst:
            flags[pk].append(
                Flag(Code.BURST, f"同一教师在 {BURST_MINUTES} 分钟内集中录入了 {BURST_RECORDS} 条以上记录。")
            )


def _no_photo(own, flags) -> None:
    ids = own.filter(method=Method.IN_HOME).filter(~Exists(Attachment.objects.filter(visit=OuterRef("pk"))))
    for pk in ids.values_list("pk", flat=True):
        flags[pk].append(Flag(Code.NO_PHOTO, "上门家访没有上传照片或扫描件。"))


def _same_notes(visits, own, flags) -> None:
    repeated = (
        visits.exclude(situation="")
        .values("situation")
        .annotate(n=Count("pk"))
        .filter(n__gte=SAME_NOTES_VISITS)
        .values_list("situation", "n")
    )
    counts = {text: n for text, n in repeated if len(text.strip()) >= SAME_NOTES_MIN_LENGTH}
    if not counts:
        return
    for pk, text in own.filter(situation__in=list(counts)).values_list("pk", "situation"):
        flags[pk].append(
            Flag(Code.SAME_NOTES, f"情况记录与本校另外 {counts[text] - 1} 条家访记录一字不差（不同学生的家访）。")
        )
