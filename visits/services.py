"""Writes of visit records: drafts, submission, corrections with their history (DESIGN §4)."""

import datetime
import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from schools.models import AuditEvent, Campaign, Phase, Role, School, User
from schools.services import audit_event_record, statistics_refresh_request
from students.models import Student
from visits.feedback import feedback_items_sync
from visits.models import Content, Method, Revision, Visit
from visits.periods import campaign_windows

# A phone's clock may run a little ahead of the server's.
FUTURE_TOLERANCE = datetime.timedelta(minutes=10)
SUGGESTIONS_MAX = 10


class VisitConflict(Exception):
    """Someone else saved the record after this form was opened; ``visit`` is their version."""

    def __init__(self, visit: Visit):
        super().__init__("visit changed by someone else")
        self.visit = visit


class VisitRepeated(Exception):
    """This submission was stored before (same ``submission_key``): ``visit`` is the record that
    first submission made. Nothing was written this time."""

    def __init__(self, visit: Visit):
        super().__init__("visit already stored under this submission key")
        self.visit = visit


@dataclass
class VisitData:
    """What a visit form carries, already parsed; the services check the rules."""

    visited_at: datetime.datetime
    method: str
    students: list[Student]
    companions: list[User] = field(default_factory=list)
    guardians_met: str = ""
    contents: list[str] = field(default_factory=list)
    situation: str = ""
    measures: str = ""
    consent_recorded: bool = False
    integrity_declared: bool = False
    # {"id": item id or None, "text", "reply", "to_school", "withdraw_reason"} (visits.feedback)
    suggestions: list[dict] = field(default_factory=list)


# Field label and how to show a value, for the history of a submitted record.
TRACKED_FIELDS = {
    "visited_at": ("家访时间", lambda v: timezone.localtime(v).strftime("%Y-%m-%d %H:%M")),
    "method": ("家访方式", lambda v: str(Method(v).label)),
    "guardians_met": ("接待家长及关系", str),
    "contents": ("家访内容", lambda v: "、".join(str(Content(c).label) for c in Content.values if c in v)),
    "situation": ("情况记录", str),
    "measures": ("商定措施", str),
    "consent_recorded": ("家长知情同意", lambda v: "是" if v else "否"),
    "integrity_declared": ("廉洁承诺", lambda v: "是" if v else "否"),
}


def visit_save_draft(
    *,
    visit: Visit | None,
    data: VisitData,
    acting_user: User,
    expected_version: int | None = None,
    submission_key: uuid.UUID | None = None,
) -> Visit:
    """Create or update a record without the completeness rules of submission. Saving a submitted
    record keeps it submitted and writes what changed to its history. ``submission_key``: as for
    :func:`visit_submit`."""
    return _visit_write(
        visit=visit,
        data=data,
        acting_user=acting_user,
        expected_version=expected_version,
        submit=False,
        submission_key=submission_key,
    )


def visit_submit(
    *,
    visit: Visit | None,
    data: VisitData,
    acting_user: User,
    expected_version: int | None = None,
    submission_key: uuid.UUID | None = None,
) -> Visit:
    """Save and submit: the record must be complete. A record sent back by the review (已退回) is
    resubmitted: it counts again, and its history says so. Asks for the school's statistics to be
    refreshed once the transaction has committed.

    ``submission_key`` (new records only; ignored when ``visit`` is given): the key the server
    rendered into the form when it was shown (hidden field ``submission_key``; the offline copy in
    the browser resends it unchanged). It is stored with the record under a unique constraint, so
    one form makes at most one visit: a repeat — in sequence or concurrently — raises
    :class:`VisitRepeated` with the record the first one made, and writes nothing. A key already
    used by another teacher raises ValidationError."""
    return _visit_write(
        visit=visit,
        data=data,
        acting_user=acting_user,
        expected_version=expected_version,
        submit=True,
        submission_key=submission_key,
    )


def _visit_write(
    *,
    visit: Visit | None,
    data: VisitData,
    acting_user: User,
    expected_version: int | None,
    submit: bool,
    submission_key: uuid.UUID | None,
) -> Visit:
    key = submission_key if visit is None else None
    if key is not None:
        _raise_if_repeated(key, acting_user)
    try:
        return _visit_write_once(
            visit=visit, data=data, acting_user=acting_user, expected_version=expected_version, submit=submit, key=key
        )
    except IntegrityError:
        # Two posts of one form at once: the other one committed first and the constraint refused this one.
        if key is not None:
            _raise_if_repeated(key, acting_user)
        raise


def _raise_if_repeated(key: uuid.UUID, acting_user: User) -> None:
    existing = Visit.objects.filter(submission_key=key).first()
    if existing is None:
        return
    if existing.lead_teacher_id != acting_user.pk:
        raise ValidationError("这份家访记录表已经提交过，请重新打开「填写家访记录」再填写。")
    raise VisitRepeated(existing)


def _visit_write_once(
    *, visit: Visit | None, data: VisitData, acting_user: User, expected_version: int | None, submit: bool, key
) -> Visit:
    with transaction.atomic():
        if visit is None:
            visit = Visit(school=_school_of(acting_user), lead_teacher=acting_user, submission_key=key)
            before = None
        else:
            visit = Visit.objects.select_for_update().get(pk=visit.pk)
            if expected_version is not None and visit.version != expected_version:
                raise VisitConflict(visit)
            before = _snapshot(visit) if visit.is_filed else None
        _check(visit=visit, data=data, acting_user=acting_user, complete=submit or visit.is_filed)
        resubmitted = submit and visit.is_returned

        for name in TRACKED_FIELDS:
            setattr(visit, name, getattr(data, name))
        visit.phase = phase_on(timezone.localdate(data.visited_at))
        if submit and not visit.is_submitted:
            visit.status = Visit.Status.SUBMITTED
            visit.submitted_at = timezone.now()
        visit.version += 0 if visit.pk is None else 1
        # The key's uniqueness is left to the constraint (a concurrent repeat is caught above).
        visit.full_clean(exclude=["school", "lead_teacher", "phase", "safety_report", "submission_key"])
        visit.save()
        visit.students.set(data.students)
        visit.companions.set(data.companions)
        # Items of the feedback ledger keep their identity: updated in place, never recreated.
        feedback_items_sync(visit=visit, items=data.suggestions, acting_user=acting_user)

        if before is not None:
            changes = _diff(before, _snapshot(visit))
            if resubmitted:
                changes["状态"] = [str(Visit.Status.RETURNED.label), str(Visit.Status.SUBMITTED.label)]
            if changes:
                Revision.objects.create(visit=visit, changed_by=acting_user, changes=changes)
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="visits.Visit",
            object_id=str(visit.public_id),
            detail={"status": visit.status, "version": visit.version},
        )
        if visit.is_submitted:
            statistics_refresh_request(school_id=visit.school_id)
    return visit


def phase_on(day: datetime.date) -> Phase | None:
    """The campaign phase whose dates contain ``day`` (a visit belongs to it)."""
    return Phase.objects.filter(start__lte=day, end__gte=day).select_related("campaign").first()


def phase_dates_update(*, phase: Phase, start: datetime.date, end: datetime.date, acting_user: User) -> Phase:
    """Move a phase's dates (DESIGN §1): the visits already filed move with them. One transaction:
    the phase is checked (``full_clean``: no overlap with the campaign's other phases) and saved,
    every visit's stored phase is derived again from its date, and the statistics are asked for.
    Raises ``ValidationError`` (nothing changed) on bad dates."""
    with transaction.atomic():
        phase = Phase.objects.select_for_update().get(pk=phase.pk)
        before = (phase.start, phase.end)
        phase.start, phase.end = start, end
        phase.full_clean()
        phase.save(update_fields=["start", "end"])
        moved = campaign_visit_phases_derive(campaign=phase.campaign, acting_user=acting_user)
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="schools.Phase",
            object_id=str(phase.pk),
            detail={"before": [d.isoformat() for d in before], "after": [start.isoformat(), end.isoformat()],
                    "visits_moved": moved},
        )  # fmt: skip
    return phase


def campaign_visit_phases_derive(*, campaign: Campaign, acting_user: User) -> int:
    """Derive every visit's stored phase again from its date after the campaign's phases changed
    (the statistics never read the stored phase; the lists and records show it). Marks every
    school's statistics stale — the whole campaign's span, the safety reports and the drafts of a
    period may all move — and asks at once for the schools whose visits moved. Runs in the caller's
    transaction (the admin's save, or ``phase_dates_update``). Returns the number of visits moved."""
    with transaction.atomic():
        windows = campaign_windows(campaign)
        moved_schools: set[int] = set()
        moved = 0
        in_a_phase = Q()
        for window in windows[1:]:
            stale = Visit.objects.filter(window.q()).exclude(phase=window.phase)
            moved_schools |= set(stale.values_list("school_id", flat=True).distinct())
            moved += stale.update(phase=window.phase)
            in_a_phase |= window.q()
        gone = Visit.objects.filter(phase__campaign=campaign)
        if windows:
            gone = gone.exclude(in_a_phase)
        moved_schools |= set(gone.values_list("school_id", flat=True).distinct())
        moved += gone.update(phase=None)
        School.objects.update(statistics_stale_since=timezone.now())
        for school_id in sorted(moved_schools):
            statistics_refresh_request(school_id=school_id)
    return moved


def _school_of(user: User) -> School:
    if user.role not in (Role.TEACHER, Role.SCHOOL_ADMIN) or user.school_id is None:
        raise ValidationError("只有学校的教师可以填写家访记录。")
    return user.school


def _check(*, visit: Visit, data: VisitData, acting_user: User, complete: bool) -> None:
    """The record's rules. Scope is checked here too: a forged POST cannot name another school's
    student or teacher."""
    errors: dict[str, list[str]] = {}

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if data.visited_at > timezone.now() + FUTURE_TOLERANCE:
        error("visited_at", "家访时间不能晚于现在。")
    campaign = Campaign.current(timezone.localdate(data.visited_at))
    if data.visited_at.year < 2000 or (campaign is None and Campaign.objects.exists()):
        error("visited_at", "家访时间不在任何家访活动年度内。")
    if data.method not in Method.values:
        error("method", "请选择家访方式。")
    if not data.students:
        error("students", "请至少选择一名学生。")
    visible = Student.objects.visible_to(acting_user)
    outside = [s for s in data.students if s.school_id != visit.school_id or not visible.filter(pk=s.pk).exists()]
    if outside:
        error("students", "所选学生不在您的学生范围内。")
    if any(s.status != Student.Status.ACTIVE for s in data.students):
        error("students", "所选学生已离校。")
    for companion in data.companions:
        if companion.school_id != visit.school_id or not companion.is_active:
            error("companions", "同行人员必须是本校在职教职工。")
            break
        if companion.pk == visit.lead_teacher_id:
            error("companions", "同行人员中不要重复填写家访教师本人。")
            break
    unknown = set(data.contents) - set(Content.values)
    if unknown:
        error("contents", "家访内容中有无法识别的选项。")
    if len(data.suggestions) > SUGGESTIONS_MAX:
        error("suggestions", f"家长意见建议最多 {SUGGESTIONS_MAX} 条。")
    for item in data.suggestions:
        if not item.get("text", "").strip():
            error("suggestions", "每条意见建议都要填写内容。")
            break
        if not item.get("reply", "").strip() and not item.get("to_school"):
            error("suggestions", "每条意见建议要填写现场答复，或勾选「提交学校处理」。")
            break

    if complete:
        if not data.contents:
            error("contents", "请至少勾选一项家访内容。")
        if not data.situation.strip():
            error("situation", "提交前请填写情况记录。")
        if not data.integrity_declared:
            error("integrity_declared", "提交前请确认廉洁承诺。")
        if data.method == Method.IN_HOME and not data.consent_recorded:
            special = [s.name for s in data.students if s.is_special]
            if special:
                error("consent_recorded", f"{'、'.join(special)}属于特殊学生群体，上门家访须记录家长知情同意。")
    if errors:
        raise ValidationError(errors)


def _snapshot(visit: Visit) -> dict:
    snapshot = {name: getattr(visit, name) for name in TRACKED_FIELDS}
    snapshot["students"] = sorted(s.name for s in visit.students.all())
    snapshot["companions"] = sorted(u.display_name for u in visit.companions.all())
    snapshot["suggestions"] = [_suggestion_line(s) for s in visit.suggestions.all()]
    return snapshot


def _suggestion_line(item) -> str:
    if item.withdrawn_reason:
        return f"{item.text}（已撤回：{item.withdrawn_reason}）"
    return f"{item.text}（{'提交学校处理' if item.to_school else '答复：' + item.reply}）"


def _diff(before: dict, after: dict) -> dict:
    changes = {}
    for name, (label, show) in TRACKED_FIELDS.items():
        if before[name] != after[name]:
            changes[label] = [show(before[name]), show(after[name])]
    for name, label in (("students", "学生"), ("companions", "同行人员"), ("suggestions", "家长意见建议")):
        if before[name] != after[name]:
            changes[label] = ["、".join(before[name]), "、".join(after[name])]
    return changes
