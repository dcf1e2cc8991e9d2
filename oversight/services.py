"""Writes of oversight (督查考核): review, back-check samples and outcomes, inspections and their
rectification. Each is one transaction, validates, and writes its audit row (STYLE.md "Shape")."""

import random
import re
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from oversight.models import (
    BackCheck,
    BackCheckSample,
    ExcellentCase,
    Inspection,
    RectificationFile,
    RectificationStep,
    ReviewCount,
    ReviewSetting,
    ReviewStep,
    inspected_schools,
)
from schools.models import AuditEvent, CampaignTarget, Phase, Role, School, User
from schools.privacy import redact_contacts
from schools.services import audit_event_record, statistics_refresh_request
from visits.attachments import PreparedFile
from visits.models import Method, Visit
from visits.notify import notify

SAMPLE_MAX = 200
RECTIFICATION_FILES_MAX = 6


# --- review (审核) --------------------------------------------------------------------------------


def review_mode(school: School) -> str:
    setting = ReviewSetting.objects.filter(school_id=school.pk).first()
    return setting.mode if setting else ReviewSetting.Mode.OFF


def review_setting_set(*, school: School, mode: str, acting_user: User) -> ReviewSetting:
    """Turn the school's review on or off (school admin of that school only). Raises ValidationError."""
    if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != school.pk:
        raise ValidationError("只有本校的学校管理员可以设置审核。")
    with transaction.atomic():
        setting, _created = ReviewSetting.objects.select_for_update().get_or_create(school=school)
        setting.mode = mode
        setting.changed_by = acting_user
        setting.changed_at = timezone.now()
        setting.full_clean()
        setting.save()
        review_counts_refresh(school_id=school.pk)
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="oversight.ReviewSetting",
            object_id=str(school.pk),
            detail={"mode": mode},
        )
    return setting


def can_review(user: User, visit: Visit, *, mode: str | None = None) -> bool:
    """Who may review a record (DESIGN §6): the school admin of its school when the school reviews;
    also the head teacher of a class of its students when the school turned that on. Nobody reviews
    their own record."""
    if not user.is_authenticated or user.school_id != visit.school_id or visit.lead_teacher_id == user.pk:
        return False
    mode = mode if mode is not None else review_mode(visit.school)
    if mode == ReviewSetting.Mode.OFF:
        return False
    if user.role == Role.SCHOOL_ADMIN:
        return True
    if mode == ReviewSetting.Mode.HEAD_TEACHER and user.role == Role.TEACHER:
        return visit.students.filter(school_class__head_teacher=user).exists()
    return False


def reviewable_visits(user: User):
    """The submitted records awaiting this user's review: not accepted since their last submission."""
    mode = review_mode(user.school) if user.school_id else ReviewSetting.Mode.OFF
    visits = Visit.objects.filter(school_id=user.school_id, status=Visit.Status.SUBMITTED).exclude(lead_teacher=user)
    if mode == ReviewSetting.Mode.OFF or user.role not in (Role.SCHOOL_ADMIN, Role.TEACHER):
        return visits.none()
    if user.role == Role.TEACHER:
        if mode != ReviewSetting.Mode.HEAD_TEACHER:
            return visits.none()
        visits = visits.filter(students__school_class__head_teacher=user).distinct()
    return visits.exclude(
        pk__in=ReviewStep.objects.filter(action=ReviewStep.Action.ACCEPTED, at__gte=_submitted_at_of_visit()).values(
            "visit_id"
        )
    )


def _submitted_at_of_visit():
    from django.db.models import OuterRef  # noqa: PLC0415 - local: only this subquery needs it

    return Visit.objects.filter(pk=OuterRef("visit_id")).values("submitted_at")[:1]


def visit_review(*, visit: Visit, action: str, reason: str = "", acting_user: User) -> ReviewStep:
    """Accept (已审核) or send back (退回) a submitted record. Sending back needs a reason, turns
    the record to 已退回 (not counted until resubmitted), tells its teacher, and asks for the
    school's statistics to be refreshed. Raises ValidationError with a Chinese message."""
    reason = reason.strip()
    with transaction.atomic():
        visit = Visit.objects.select_for_update(of=("self",)).select_related("school").get(pk=visit.pk)
        if not can_review(acting_user, visit):
            raise ValidationError("您不能审核这条记录。")
        if not visit.is_submitted:
            raise ValidationError("只有已提交的记录可以审核。")
        accepted = ReviewStep.objects.filter(visit=visit, action=ReviewStep.Action.ACCEPTED)
        if visit.submitted_at is not None:
            accepted = accepted.filter(at__gte=visit.submitted_at)
        if accepted.exists():
            raise ValidationError("这条记录已审核通过。")
        if action == ReviewStep.Action.RETURNED and not reason:
            raise ValidationError({"reason": "退回时请填写退回原因，告诉老师需要修改什么。"})
        step = ReviewStep(visit=visit, action=action, reason=reason, reviewer=acting_user)
        step.full_clean()
        step.save()
        if action == ReviewStep.Action.RETURNED:
            Visit.objects.filter(pk=visit.pk).update(status=Visit.Status.RETURNED, version=visit.version + 1)
        review_counts_refresh(school_id=visit.school_id)
        if action == ReviewStep.Action.RETURNED:
            statistics_refresh_request(school_id=visit.school_id)
            # The reason stays on the record: a notification may also go to a group robot.
            notify(
                users=[visit.lead_teacher],
                title="家访记录被退回",
                body=f"{timezone.localtime(visit.visited_at):%m月%d日}的家访记录被学校退回，请查看退回原因并修改后重新提交。",
                link=reverse("visit_detail", args=[visit.public_id]),
            )
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="visits.Visit",
            object_id=str(visit.public_id),
            detail={"review": action, "reason": reason},
        )
    return step


def review_counts_refresh(*, school_id: int) -> ReviewCount:
    """Recount the school's accepted (已审核: accepted since its last submission), returned (已退回)
    and awaiting records into its ``ReviewCount`` row, in one grouped query. Safe to re-run."""
    accepted_since_submission = ReviewStep.objects.filter(
        visit_id=OuterRef("pk"), action=ReviewStep.Action.ACCEPTED, at__gte=OuterRef("submitted_at")
    )
    row = (
        Visit.objects.filter(school_id=school_id, status__in=[Visit.Status.SUBMITTED, Visit.Status.RETURNED])
        .annotate(accepted=Exists(accepted_since_submission))
        .aggregate(
            accepted_n=Count("pk", filter=Q(accepted=True, status=Visit.Status.SUBMITTED)),
            returned_n=Count("pk", filter=Q(status=Visit.Status.RETURNED)),
            submitted_n=Count("pk", filter=Q(status=Visit.Status.SUBMITTED)),
        )
    )
    reviews = review_mode(School(pk=school_id)) != ReviewSetting.Mode.OFF
    counts, _created = ReviewCount.objects.update_or_create(
        school_id=school_id,
        defaults={
            "accepted": row["accepted_n"],
            "returned": row["returned_n"],
            "awaiting": row["submitted_n"] - row["accepted_n"] if reviews else 0,
            "computed_at": timezone.now(),
        },
    )
    return counts


# --- back-checks (抽查回访) ---------------------------------------------------------------------------


def sample_population(*, school: School, phase: Phase | None, method: str, flagged_only: bool) -> list[int]:
    """The ids of the school's submitted visits that a sample with these filters draws from, in id
    order (the order the seed is applied to)."""
    from oversight.flags import school_flags  # noqa: PLC0415 - flags import this module's neighbours

    visits = Visit.objects.filter(school=school, status=Visit.Status.SUBMITTED)
    if phase is not None:
        visits = visits.filter(phase=phase)
    if method:
        visits = visits.filter(method=method)
    ids = list(visits.order_by("pk").values_list("pk", flat=True))
    if flagged_only:
        flagged = school_flags(school)
        ids = [pk for pk in ids if pk in flagged]
    return ids


def sample_pick(population: list[int], *, size: int, seed: int) -> list[int]:
    """The reproducible draw: ``size`` ids of ``population`` (sorted ids) chosen by ``random.Random(seed)``."""
    return sorted(random.Random(seed).sample(population, min(size, len(population))))  # noqa: S311 - not security


def sample_draw(
    *,
    school: School,
    acting_user: User,
    phase: Phase | None = None,
    method: str = "",
    size: int | None = None,
    share: int | None = None,
    flagged_only: bool = False,
    seed: int | None = None,
) -> BackCheckSample:
    """Draw a random sample of the school's submitted visits for back-checks (抽查回访, DESIGN §6).

    ``size`` is a number of visits, or ``share`` a percentage (1–100) of those matching the filters
    (rounded up). The seed is stored: ``sample_pick(sample_population(...), size, seed)`` gives the
    same visits again. Raises ValidationError: school outside the user's 包联/own school, no size, no
    matching visits."""
    if not inspected_schools(acting_user).filter(pk=school.pk).exists():
        raise ValidationError("您只能抽查包联学校（或本校）的家访记录。")
    if method and method not in Method.values:
        raise ValidationError({"method": "家访方式无法识别。"})
    if phase is not None and phase.campaign_id is None:
        raise ValidationError({"phase": "阶段无法识别。"})
    if (size is None) == (share is None):
        raise ValidationError({"size": "请填写抽取条数或抽取比例（二选一）。"})
    if share is not None and not 1 <= share <= 100:
        raise ValidationError({"share": "抽取比例应在 1% 到 100% 之间。"})
    if size is not None and not 1 <= size <= SAMPLE_MAX:
        raise ValidationError({"size": f"抽取条数应在 1 到 {SAMPLE_MAX} 之间。"})
    with transaction.atomic():
        population = sample_population(school=school, phase=phase, method=method, flagged_only=flagged_only)
        if not population:
            raise ValidationError("没有符合条件的已提交家访记录可以抽取。")
        wanted = size if size is not None else -(-len(population) * share // 100)
        wanted = min(wanted, SAMPLE_MAX)
        seed = seed if seed is not None else secrets.randbelow(2**31)
        chosen = sample_pick(population, size=wanted, seed=seed)
        sample = BackCheckSample(
            school=school,
            phase=phase,
            method=method,
            flagged_only=flagged_only,
            size=len(chosen),
            population=len(population),
            seed=seed,
            drawn_by=acting_user,
        )
        sample.full_clean()
        sample.save()
        teachers = dict(Visit.objects.filter(pk__in=chosen).values_list("pk", "lead_teacher_id"))
        BackCheck.objects.bulk_create(
            BackCheck(sample=sample, visit_id=pk, lead_teacher_id=teachers[pk]) for pk in chosen
        )
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="oversight.BackCheckSample",
            object_id=str(sample.public_id),
            detail={"school": school.pk, "size": len(chosen), "population": len(population), "seed": seed},
        )
    return sample


def can_check(user: User, sample: BackCheckSample) -> bool:
    """The one who drew a sample, and anyone who may draw samples for its school, records outcomes."""
    return sample.drawn_by_id == user.pk or inspected_schools(user).filter(pk=sample.school_id).exists()


def back_check_record(*, check: BackCheck, outcome: str, note: str = "", acting_user: User) -> BackCheck:
    """Record what the call or visit to the family found: 属实 / 与记录不符 / 联系不上 and a note
    (required when the visit is found untrue). Raises ValidationError."""
    note = note.strip()
    with transaction.atomic():
        check = BackCheck.objects.select_for_update(of=("self",)).select_related("sample", "visit").get(pk=check.pk)
        if not can_check(acting_user, check.sample):
            raise ValidationError("您不能填写这次抽查的回访结果。")
        if outcome not in BackCheck.Outcome.values:
            raise ValidationError({"outcome": "请选择回访结果：属实、与记录不符或联系不上。"})
        if outcome == BackCheck.Outcome.UNTRUE and not note:
            raise ValidationError({"note": "回访结果为「与记录不符」时，请在说明中写明哪里不符。"})
        check.outcome = outcome
        check.note = note
        check.checked_by = acting_user
        check.checked_at = timezone.now()
        check.full_clean()
        check.save(update_fields=["outcome", "note", "checked_by", "checked_at"])
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="oversight.BackCheck",
            object_id=str(check.public_id),
            detail={"visit": str(check.visit.public_id), "outcome": outcome},
        )
    return check


# --- inspections (督查记录) and rectification (整改) ------------------------------------------------


def inspection_file(
    *,
    school: School,
    date,
    how: str,
    findings: str,
    rectification: str = "",
    deadline=None,
    acting_user: User,
) -> Inspection:
    """An inspector (or the bureau admin) records an inspection of a school in their charge. A
    required rectification needs a deadline; without one the record needs no rectification.
    Raises ValidationError field by field."""
    if acting_user.role not in (Role.INSPECTOR, Role.BUREAU_ADMIN) or not (
        inspected_schools(acting_user).filter(pk=school.pk).exists()
    ):
        raise ValidationError("您只能为包联学校填写督查记录。")
    rectification = rectification.strip()
    errors = {}
    if rectification and deadline is None:
        errors["deadline"] = "有整改要求时请填写整改期限。"
    if deadline is not None and date is not None and deadline < date:
        errors["deadline"] = "整改期限不能早于督查日期。"
    if date is not None and date > timezone.localdate():
        errors["date"] = "督查日期不能晚于今天。"
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        inspection = Inspection(
            school=school,
            inspector=acting_user,
            date=date,
            how=how,
            findings=findings.strip(),
            rectification=rectification,
            deadline=deadline if rectification else None,
            status=Inspection.Status.OPEN if rectification else Inspection.Status.NO_RECTIFICATION,
        )
        inspection.full_clean()
        inspection.save()
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="oversight.Inspection",
            object_id=str(inspection.public_id),
            detail={"school": school.pk, "status": inspection.status},
        )
        if rectification:
            notify(
                users=User.objects.filter(school=school, role=Role.SCHOOL_ADMIN, is_active=True),
                title="督查整改通知",
                body=f"{inspection.date:%m月%d日}督查提出整改要求，期限 {inspection.deadline:%m月%d日}。",
                link=reverse("inspection_detail", args=[inspection.public_id]),
            )
    return inspection


def can_report_rectification(user: User, inspection: Inspection) -> bool:
    return (
        user.role == Role.SCHOOL_ADMIN
        and user.school_id == inspection.school_id
        and inspection.status in (Inspection.Status.OPEN, Inspection.Status.SENT_BACK)
    )


def can_decide_rectification(user: User, inspection: Inspection) -> bool:
    return inspection.status == Inspection.Status.REPORTED and (
        user.pk == inspection.inspector_id or user.role == Role.BUREAU_ADMIN
    )


def rectification_report(
    *, inspection: Inspection, text: str, files: list[PreparedFile] = (), acting_user: User
) -> RectificationStep:
    """The school admin reports what was done, with photos or scans (checked by
    ``visits.attachments.attachment_prepare``). Raises ValidationError."""
    text = text.strip()
    with transaction.atomic():
        inspection = Inspection.objects.select_for_update().get(pk=inspection.pk)
        if not can_report_rectification(acting_user, inspection):
            raise ValidationError("这条督查记录现在不需要本校报告整改情况。")
        if not text:
            raise ValidationError({"text": "请填写整改情况。"})
        if len(files) > RECTIFICATION_FILES_MAX:
            raise ValidationError({"files": f"附件最多 {RECTIFICATION_FILES_MAX} 个。"})
        step = _step(inspection, RectificationStep.Action.REPORTED, text, acting_user)
        stored = []
        for prepared in files:
            item = RectificationFile(
                step=step, original_name=prepared.name, content_type=prepared.content_type, size=len(prepared.payload)
            )
            item.full_clean()
            item.save()
            stored.append((item, prepared.payload))
        inspection.status = Inspection.Status.REPORTED
        inspection.save(update_fields=["status"])
        _audit_inspection(inspection, acting_user, "reported", files=len(stored))
        # Files written last, so that a failure before this point leaves none behind.
        for item, payload in stored:
            item.path.parent.mkdir(parents=True, exist_ok=True)
            item.path.write_bytes(payload)
    return step


def rectification_decide(
    *, inspection: Inspection, accept: bool, text: str = "", acting_user: User
) -> RectificationStep:
    """The inspector accepts the rectification or sends it back with what is still missing."""
    text = text.strip()
    with transaction.atomic():
        inspection = Inspection.objects.select_for_update().get(pk=inspection.pk)
        if not can_decide_rectification(acting_user, inspection):
            raise ValidationError("这条督查记录现在不能验收。")
        if not accept and not text:
            raise ValidationError({"text": "退回时请写明还需要整改什么。"})
        action = RectificationStep.Action.ACCEPTED if accept else RectificationStep.Action.SENT_BACK
        step = _step(inspection, action, text or "验收通过。", acting_user)
        inspection.status = Inspection.Status.ACCEPTED if accept else Inspection.Status.SENT_BACK
        inspection.save(update_fields=["status"])
        _audit_inspection(inspection, acting_user, action)
    return step


def _step(inspection: Inspection, action: str, text: str, user: User) -> RectificationStep:
    step = RectificationStep(inspection=inspection, action=action, text=text, by=user)
    step.full_clean()
    step.save()
    return step


def _audit_inspection(inspection: Inspection, user: User, what: str, **detail) -> None:
    audit_event_record(
        action=AuditEvent.Action.CHANGE,
        user=user,
        object_type="oversight.Inspection",
        object_id=str(inspection.public_id),
        detail={"step": what, "status": inspection.status, **detail},
    )


# --- the best visits chosen (家访日志评选) ------------------------------------------------------------

_MASKED = re.compile(r"[0-9０-９Xx]*\*{3,}[0-9０-９Xx]*")


def public_text_draft(visit: Visit) -> str:
    """A first draft of what the county may read of a record: its notes and measures with the
    students' and guardians' names replaced (「该生」, 「家长」), phone and ID numbers removed. Addresses
    and other details a sentence may carry are not found by a machine: the nominating admin reviews
    and edits the draft before it can be shown (DESIGN §8)."""
    text = "\n".join(part for part in (visit.situation.strip(), visit.measures.strip()) if part)
    replacements: list[tuple[str, str]] = []
    for student in visit.students.prefetch_related("guardians"):
        replacements.append((student.name, "该生"))
        if len(student.name) >= 3:
            replacements.append((student.name[1:], "该生"))
        replacements += [(guardian.name, "家长") for guardian in student.guardians.all() if guardian.name]
    for name, placeholder in sorted(replacements, key=lambda pair: -len(pair[0])):
        text = text.replace(name, placeholder)
    return _MASKED.sub("（已删除）", redact_contacts(text))


def case_nominate(*, visit: Visit, reason: str, title: str = "", acting_user: User) -> ExcellentCase:
    """A school admin nominates one of the school's submitted records as an excellent case
    (优秀家访案例) with a short reason. Raises ValidationError."""
    reason = reason.strip()
    with transaction.atomic():
        visit = Visit.objects.select_for_update().get(pk=visit.pk)
        if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != visit.school_id:
            raise ValidationError("只有本校的学校管理员可以推荐优秀家访案例。")
        if not visit.is_submitted or visit.phase is None:
            raise ValidationError("只能推荐活动阶段内已提交的家访记录。")
        if ExcellentCase.objects.filter(visit=visit).exists():
            raise ValidationError("这条记录已经推荐过。")
        if not reason:
            raise ValidationError({"reason": "请填写推荐理由。"})
        case = ExcellentCase(
            visit=visit,
            school_id=visit.school_id,
            teacher_id=visit.lead_teacher_id,
            campaign=visit.phase.campaign,
            reason=reason,
            title=(title.strip() or f"{visit.get_method_display()}：{visit.visited_at:%Y年%m月}的一次家访")[:60],
            public_text=public_text_draft(visit) or "（请填写）",
            nominated_by=acting_user,
        )
        case.full_clean()
        case.save()
        _audit_case(case, acting_user, "nominated")
    return case


def case_text_review(*, case: ExcellentCase, title: str, public_text: str, acting_user: User) -> ExcellentCase:
    """The school admin edits and approves the text the county will read; a later edit approves again."""
    with transaction.atomic():
        case = ExcellentCase.objects.select_for_update().get(pk=case.pk)
        if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != case.school_id:
            raise ValidationError("只有本校的学校管理员可以审核案例的公开内容。")
        if not public_text.strip() or not title.strip():
            raise ValidationError({"public_text": "标题和公开展示的内容都不能为空。"})
        case.title, case.public_text = title.strip(), public_text.strip()
        case.text_reviewed_by, case.text_reviewed_at = acting_user, timezone.now()
        case.full_clean()
        case.save(update_fields=["title", "public_text", "text_reviewed_by", "text_reviewed_at"])
        _audit_case(case, acting_user, "text_reviewed")
    return case


CASE_STEPS = {
    ExcellentCase.Status.NOMINATED: {ExcellentCase.Status.SHORTLISTED, ExcellentCase.Status.NOT_CHOSEN},
    ExcellentCase.Status.SHORTLISTED: {ExcellentCase.Status.CHOSEN, ExcellentCase.Status.NOT_CHOSEN},
}


def case_advance(*, case: ExcellentCase, status: str, acting_user: User) -> ExcellentCase:
    """The bureau runs the selection: nominated → shortlisted → chosen (or not chosen at either step)."""
    with transaction.atomic():
        case = ExcellentCase.objects.select_for_update().get(pk=case.pk)
        if acting_user.role != Role.BUREAU_ADMIN:
            raise ValidationError("评选由教育局管理员进行。")
        if status not in CASE_STEPS.get(case.status, set()):
            raise ValidationError(f"「{case.get_status_display()}」的案例不能改为这个状态。")
        case.status = status
        case.decided_by, case.decided_at = acting_user, timezone.now()
        case.save(update_fields=["status", "decided_by", "decided_at"])
        _audit_case(case, acting_user, status)
    return case


def _audit_case(case: ExcellentCase, user: User, what: str) -> None:
    audit_event_record(
        action=AuditEvent.Action.CHANGE,
        user=user,
        object_type="oversight.ExcellentCase",
        object_id=str(case.public_id),
        detail={"step": what, "status": case.status},
    )


# --- targets per unit -----------------------------------------------------------------------------


def target_set(
    *,
    campaign,
    zone=None,
    school=None,
    coverage: int,
    participation: int,
    focus_coverage: int,
    special_in_home: int,
    acting_user: User,
) -> CampaignTarget:
    """The bureau admin sets the campaign's target rates for the county (no zone, no school), a zone
    or a school; setting one again replaces it. Raises ValidationError field by field."""
    if acting_user.role != Role.BUREAU_ADMIN:
        raise ValidationError("目标由教育局管理员设置。")
    if zone is not None and school is not None:
        raise ValidationError("请只选择片区或学校中的一个。")
    with transaction.atomic():
        target = CampaignTarget.objects.select_for_update().filter(
            campaign=campaign, zone=zone, school=school
        ).first() or CampaignTarget(campaign=campaign, zone=zone, school=school)
        target.coverage, target.participation = coverage, participation
        target.focus_coverage, target.special_in_home = focus_coverage, special_in_home
        target.full_clean(validate_constraints=False)
        target.save()
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="schools.CampaignTarget",
            object_id=str(target.pk),
            detail={"zone": zone.pk if zone else None, "school": school.pk if school else None, "coverage": coverage},
        )
    return target


def target_remove(*, target: CampaignTarget, acting_user: User) -> None:
    """Remove a zone's or school's own target (it follows the next one up again)."""
    if acting_user.role != Role.BUREAU_ADMIN:
        raise ValidationError("目标由教育局管理员设置。")
    with transaction.atomic():
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="schools.CampaignTarget",
            object_id=str(target.pk),
            detail={"removed": True},
        )
        target.delete()
