"""The support ledger (特殊学生帮扶台账, 一生一策; DESIGN §3, §6): reads and writes of support plans.

A special student is one with a ``SPECIAL_CATEGORIES`` category in force. Each needs, per school
year, a plan under the four headings, the guardians' consent, and at least two in-home visits
(``IN_HOME_VISITS_REQUIRED``); the plan's follow-up visits are the student's visit records.
A special student with no plan this year is 「待建档」; an active plan past its review date, or
whose student lost a category, is 「待复核」.
"""

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from ledgers.care_models import PLAN_HEADINGS, SupportPlan, SupportPlanRevision, SupportPrompt
from schools.models import AuditEvent, Phase, Role, School, SchoolClass, SchoolYear, User
from schools.privacy import mask_id_number, works_with_students
from schools.services import audit_event_record
from students.models import (
    CARE_CATEGORIES,
    IN_HOME_VISITS_REQUIRED,
    SPECIAL_CATEGORIES,
    Category,
    Student,
    StudentCategory,
)
from visits.models import Method, Visit

OBJECT_TYPE = "ledgers.SupportPlan"
# The county's roles read the ledger with the categories generalised (DESIGN §8).
SPECIAL_GENERAL = "特殊学生"
CARE_GENERAL = "关爱对象"
# A new plan is reviewed this long after it is written unless the form says otherwise.
DEFAULT_REVIEW_AFTER = datetime.timedelta(days=90)
PAGE_SIZE = 50


class RowStatus:
    NO_PLAN = "no_plan"
    OVERDUE = "overdue"
    BELOW_TWO = "below_two"
    ACTIVE = "active"
    CLOSED = "closed"

    LABELS = {
        NO_PLAN: "待建档",
        OVERDUE: "待复核",
        BELOW_TWO: "入户不足2次",
        ACTIVE: "在帮扶",
        CLOSED: "已结束",
    }


def category_labels(codes: list[str], *, whole: bool) -> list[str]:
    """Labels of category codes; for readers who do not work with the student, every special or care
    category becomes 「特殊学生」 / 「关爱对象」 (DESIGN §8)."""
    if whole:
        return [str(Category(code).label) for code in codes]
    labels = []
    if any(code in SPECIAL_CATEGORIES for code in codes):
        labels.append(SPECIAL_GENERAL)
    if any(code in CARE_CATEGORIES for code in codes):
        labels.append(CARE_GENERAL)
    return labels


# --- reads -------------------------------------------------------------------------------------


@dataclass
class SupportRow:
    """One special student of the ledger."""

    student: Student
    categories: list[str]  # codes in force
    plan: SupportPlan | None
    in_home: int
    responsible: User | None
    today: datetime.date

    @property
    def needs_plan(self) -> bool:
        return self.plan is None

    @property
    def review_overdue(self) -> bool:
        plan = self.plan
        return bool(
            plan and plan.is_active and (plan.next_review_on < self.today or plan.review_requested_on is not None)
        )

    @property
    def below_two(self) -> bool:
        return self.in_home < IN_HOME_VISITS_REQUIRED

    @property
    def in_home_missing(self) -> int:
        return max(0, IN_HOME_VISITS_REQUIRED - self.in_home)

    def statuses(self) -> list[str]:
        found = []
        if self.needs_plan:
            found.append(RowStatus.NO_PLAN)
        elif not self.plan.is_active:
            found.append(RowStatus.CLOSED)
        else:
            found.append(RowStatus.ACTIVE)
        if self.review_overdue:
            found.append(RowStatus.OVERDUE)
        if self.below_two:
            found.append(RowStatus.BELOW_TWO)
        return found


@dataclass
class ClassCount:
    school_class: SchoolClass | None
    special: int = 0
    no_plan: int = 0
    overdue: int = 0
    below_two: int = 0


@dataclass
class SupportLedger:
    school: School
    year: SchoolYear | None
    rows: list[SupportRow]
    classes: list[ClassCount] = field(default_factory=list)
    totals: ClassCount | None = None


def special_students(school: School, *, today: datetime.date, user: User | None = None):
    """Active students of the school with a special category in force on ``today`` (a queryset)."""
    students = special_students_of_schools([school.pk], today=today)
    if user is not None:
        students = students.visible_to(user)
    return students


def special_students_of_schools(school_ids: Iterable[int], *, today: datetime.date):
    """``special_students`` of several schools at once (a queryset): the demo data reads the county's
    in one query."""
    in_force = StudentCategory.objects.in_force_on(today).filter(category__in=SPECIAL_CATEGORIES)
    return Student.objects.active().filter(school_id__in=list(school_ids), pk__in=in_force.values("student_id"))


def in_home_counts(student_ids: list[int], year: SchoolYear | None) -> dict[int, int]:
    """Submitted in-home visits (上门家访) per student in the school year. One grouped query."""
    if year is None or not student_ids:
        return {}
    rows = (
        Visit.students.through.objects.filter(
            student_id__in=student_ids,
            visit__status=Visit.Status.SUBMITTED,
            visit__method=Method.IN_HOME,
            visit__visited_at__date__gte=year.start,
            visit__visited_at__date__lte=year.end,
        )
        .values("student_id")
        .annotate(n=Count("visit_id"))
    )
    return {row["student_id"]: row["n"] for row in rows}


def support_ledger(
    school: School,
    *,
    user: User,
    today: datetime.date | None = None,
    category: str = "",
    class_id: int | None = None,
    teacher_id: int | None = None,
    status: str = "",
) -> SupportLedger:
    """The school's special students with their plan, in-home count and status, filtered as asked,
    and the counts per class (of the unfiltered ledger). Five queries whatever the number of rows.

    For a teacher, only the students whose plans the teacher may see (head teacher or responsible)."""
    today = today or timezone.localdate()
    year = SchoolYear.current(today)
    students = special_students(school, today=today)
    if user.role == Role.TEACHER:
        students = students.filter(Q(school_class__head_teacher=user) | Q(support_plans__responsible_teacher=user))
    students = list(
        students.distinct()
        .select_related("school_class__head_teacher")
        .prefetch_related(Prefetch("categories", queryset=StudentCategory.objects.in_force_on(today)))
    )
    plans = {}
    if year is not None:
        plans = {
            plan.student_id: plan
            for plan in SupportPlan.objects.filter(
                school=school, school_year=year, student__in=students
            ).select_related("responsible_teacher")
        }
    counts = in_home_counts([s.pk for s in students], year)
    rows = []
    for student in students:
        plan = plans.get(student.pk)
        head = student.school_class.head_teacher if student.school_class_id else None
        responsible = plan.responsible_teacher if plan and plan.responsible_teacher_id else head
        rows.append(
            SupportRow(
                student=student,
                categories=student.categories_on(today),
                plan=plan,
                in_home=counts.get(student.pk, 0),
                responsible=responsible,
                today=today,
            )
        )
    if user.role == Role.TEACHER:
        rows = [r for r in rows if r.responsible is not None and r.responsible.pk == user.pk or _heads(r, user)]
    by_class: dict[int | None, ClassCount] = {}
    totals = ClassCount(school_class=None)
    for row in rows:
        key = row.student.school_class_id
        count = by_class.setdefault(key, ClassCount(school_class=row.student.school_class))
        for target in (count, totals):
            target.special += 1
            target.no_plan += row.needs_plan
            target.overdue += row.review_overdue
            target.below_two += row.below_two
    if category:
        rows = [r for r in rows if category in r.categories]
    if class_id:
        rows = [r for r in rows if r.student.school_class_id == class_id]
    if teacher_id:
        rows = [r for r in rows if r.responsible is not None and r.responsible.pk == teacher_id]
    if status:
        rows = [r for r in rows if status in r.statuses()]
    classes = sorted(
        by_class.values(),
        key=lambda c: (
            c.school_class is None,
            c.school_class.grade if c.school_class else 0,
            c.school_class.number if c.school_class else 0,
        ),
    )
    return SupportLedger(school=school, year=year, rows=rows, classes=classes, totals=totals)


def teacher_ledger_flags(user: User, *, today: datetime.date | None = None) -> tuple[bool, bool]:
    """(has special students, has care students) among those the teacher heads or is responsible
    for: one query, so that a teacher with neither pays nothing more on the home page."""
    today = today or timezone.localdate()
    in_force = StudentCategory.objects.in_force_on(today)
    flags = (
        Student.objects.active()
        .filter(school_id=user.school_id)
        .filter(Q(school_class__head_teacher=user) | Q(support_plans__responsible_teacher=user))
        .annotate(
            special=Exists(in_force.filter(student=OuterRef("pk"), category__in=SPECIAL_CATEGORIES)),
            care=Exists(
                in_force.filter(student=OuterRef("pk"), category__in=CARE_CATEGORIES),
            ),
        )
        .filter(Q(special=True) | Q(care=True))
        .values_list("special", "care")
        .distinct()
    )
    found = list(flags)
    return any(s for s, _c in found), any(c for _s, c in found)


def _heads(row: SupportRow, user: User) -> bool:
    school_class = row.student.school_class
    return school_class is not None and school_class.head_teacher_id == user.pk


def support_counts(school: School, *, today: datetime.date | None = None) -> ClassCount:
    """The school's totals only (for the home page card): special, 待建档, 待复核, 入户不足2次."""
    today = today or timezone.localdate()
    year = SchoolYear.current(today)
    student_ids = list(special_students(school, today=today).values_list("pk", flat=True))
    totals = ClassCount(school_class=None, special=len(student_ids))
    if year is None:
        totals.no_plan = len(student_ids)
        totals.below_two = len(student_ids)
        return totals
    plans = list(
        SupportPlan.objects.filter(school=school, school_year=year, student_id__in=student_ids).values(
            "student_id", "status", "next_review_on", "review_requested_on"
        )
    )
    totals.no_plan = len(student_ids) - len(plans)
    totals.overdue = sum(
        1
        for p in plans
        if p["status"] == SupportPlan.Status.ACTIVE and (p["next_review_on"] < today or p["review_requested_on"])
    )
    counts = in_home_counts(student_ids, year)
    totals.below_two = sum(1 for sid in student_ids if counts.get(sid, 0) < IN_HOME_VISITS_REQUIRED)
    return totals


@dataclass
class TimelineEntry:
    when: datetime.datetime
    kind: str  # visit / revision / created
    title: str
    text: str
    visit: Visit | None = None


@dataclass
class PlanPage:
    plan: SupportPlan
    categories: list[str]  # labels, generalised for the county's roles
    visits: list[Visit]
    in_home: int
    required: int
    next_due: str
    timeline: list[TimelineEntry]
    whole: bool
    masked_number: str


def plan_page(plan: SupportPlan, *, user: User, today: datetime.date | None = None) -> PlanPage:
    """What the plan page shows: the student's visits this school year (those the user may see), the
    in-home count against 2 and when the next is due, and the timeline (agreed measures written on
    visits, the plan's changes). The county's roles get no notes and no measures."""
    today = today or timezone.localdate()
    year = plan.school_year
    whole = works_with_students(user)
    visits = list(
        Visit.objects.visible_to(user)
        .filter(students=plan.student, visited_at__date__gte=year.start, visited_at__date__lte=year.end)
        .select_related("lead_teacher", "phase")
        .order_by("-visited_at")
    )
    in_home = sum(1 for v in visits if v.is_submitted and v.is_in_home)
    if in_home >= IN_HOME_VISITS_REQUIRED:
        next_due = f"本学年已入户家访 {in_home} 次，已达要求。"
    else:
        revisit = (
            Phase.objects.filter(kind=Phase.Kind.REVISIT, campaign__school_year=year).order_by("-start").first()
            or Phase.objects.filter(kind=Phase.Kind.REVISIT, start__gte=year.start, end__lte=year.end).first()
        )
        missing = IN_HOME_VISITS_REQUIRED - in_home
        if revisit is not None and revisit.end >= today:
            next_due = f"还需入户家访 {missing} 次，请在第二轮重点回访结束（{revisit.end:%Y年%m月%d日}）前完成。"
        else:
            next_due = (
                f"还需入户家访 {missing} 次，请在本学年结束（{year.end:%Y年%m月%d日}）前完成，已经逾期的请尽快安排。"
            )
    timeline = [
        TimelineEntry(when=plan.created_at, kind="created", title="建档", text=f"{plan.created_by or ''}建立帮扶计划")
    ]
    if whole:
        for visit in visits:
            if visit.is_submitted and visit.measures.strip():
                timeline.append(
                    TimelineEntry(
                        when=visit.visited_at,
                        kind="visit",
                        title=f"{visit.get_method_display()}·商定措施",
                        text=visit.measures,
                        visit=visit,
                    )
                )
        for revision in plan.revisions.select_related("changed_by"):
            timeline.append(
                TimelineEntry(
                    when=revision.changed_at,
                    kind="revision",
                    title=f"{revision.changed_by or ''}修改",
                    text="；".join(
                        f"{label}：{before or '（空）'} → {after or '（空）'}"
                        for label, (before, after) in revision.changes.items()
                    ),
                )
            )
    timeline.sort(key=lambda e: e.when, reverse=True)
    return PlanPage(
        plan=plan,
        categories=category_labels(plan.student.categories_on(today) or plan.categories, whole=whole),
        visits=visits,
        in_home=in_home,
        required=IN_HOME_VISITS_REQUIRED,
        next_due=next_due,
        timeline=timeline,
        whole=whole,
        masked_number=plan.student.student_number if whole else mask_id_number(plan.student.student_number),
    )


def can_edit_plan(user: User, student: Student, plan: SupportPlan | None = None) -> bool:
    """The school admin, the student's head teacher and the plan's responsible teacher write plans."""
    if not user.is_authenticated or user.school_id != student.school_id:
        return False
    if user.role == Role.SCHOOL_ADMIN:
        return True
    if user.role != Role.TEACHER:
        return False
    if student.school_class_id and student.school_class.head_teacher_id == user.pk:
        return True
    return plan is not None and plan.responsible_teacher_id == user.pk


def plan_audit_view(*, plan: SupportPlan, request, whole: bool) -> None:
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type=OBJECT_TYPE,
        object_id=str(plan.public_id),
        detail={"full": whole, "student": str(plan.student.public_id)},
    )


# --- writes ------------------------------------------------------------------------------------

EDITABLE_FIELDS = [
    "responsible_teacher",
    "consent_by",
    "consent_on",
    "consent_method",
    *[f"{prefix}_{part}" for prefix, _label in PLAN_HEADINGS for part in ("measures", "who", "due")],
    "next_review_on",
    "status",
    "close_reason",
]


def support_plan_save(
    *,
    student: Student,
    plan: SupportPlan | None,
    values: dict,
    acting_user: User,
    reviewed: bool = False,
    expected_version: int | None = None,
) -> SupportPlan:
    """Create the student's plan for the current school year, or change one. Every change after the
    first save goes to the plan's history with who and when. ``reviewed`` records a review today
    (clears a review request). Only the school admin names a responsible teacher other than the head
    teacher. Raises ValidationError (field → message) and changes nothing on bad input."""
    today = timezone.localdate()
    with transaction.atomic():
        if plan is None:
            year = SchoolYear.current(today)
            if year is None:
                raise ValidationError("还没有设置学年，无法建立帮扶计划。请联系教育局管理员。")
            if SupportPlan.objects.filter(student=student, school_year=year).exists():
                raise ValidationError(f"{student.name}本学年已有帮扶计划，请在原计划上修改。")
            plan = SupportPlan(
                student=student,
                school=student.school,
                school_year=year,
                created_by=acting_user,
                categories=[c for c in student.categories_on(today) if c in SPECIAL_CATEGORIES or c in CARE_CATEGORIES],
            )
            before = None
        else:
            plan = (
                SupportPlan.objects.select_for_update(of=("self",))
                .select_related("student__school_class")
                .get(pk=plan.pk)
            )
            if expected_version is not None and plan.version != expected_version:
                raise ValidationError("这份计划已被他人修改，请刷新页面后再改。")
            before = _snapshot(plan)
        if not can_edit_plan(acting_user, student, plan if before is not None else None):
            raise ValidationError("您不能修改这名学生的帮扶计划。")
        _check(plan=plan, values=values, acting_user=acting_user, student=student)
        for name in EDITABLE_FIELDS:
            if name in values:
                setattr(plan, name, values[name])
        if plan.status == SupportPlan.Status.CLOSED and plan.closed_on is None:
            plan.closed_on = today
        if plan.status == SupportPlan.Status.ACTIVE:
            plan.close_reason = ""
            plan.closed_on = None
        if reviewed:
            plan.last_reviewed_on = today
            plan.review_requested_on = None
            plan.review_reason = ""
            plan.categories = [
                c for c in student.categories_on(today) if c in SPECIAL_CATEGORIES or c in CARE_CATEGORIES
            ]
        if before is not None:
            plan.version += 1
        plan.full_clean(exclude=["student", "school", "school_year", "created_by"])
        plan.save()
        if before is not None:
            changes = _diff(before, _snapshot(plan))
            if changes:
                SupportPlanRevision.objects.create(plan=plan, changed_by=acting_user, changes=changes)
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type=OBJECT_TYPE,
            object_id=str(plan.public_id),
            detail={"event": "created" if before is None else "changed", "version": plan.version},
        )
    return plan


def _check(*, plan: SupportPlan, values: dict, acting_user: User, student: School) -> None:
    errors: dict[str, str] = {}
    responsible = values.get("responsible_teacher", plan.responsible_teacher)
    head_id = student.school_class.head_teacher_id if student.school_class_id else None
    if responsible is not None:
        if responsible.school_id != student.school_id or not responsible.is_active:
            errors["responsible_teacher"] = "责任教师必须是本校在职教职工。"
        elif (
            acting_user.role != Role.SCHOOL_ADMIN
            and responsible.pk != head_id
            and responsible.pk != plan.responsible_teacher_id
        ):
            errors["responsible_teacher"] = "只有学校管理员可以指定班主任以外的责任教师。"
    if not values.get("next_review_on", plan.next_review_on):
        errors["next_review_on"] = "请填写下次复核日期。"
    if not any((values.get(f"{prefix}_measures") or "").strip() for prefix, _label in PLAN_HEADINGS):
        errors["economic_measures"] = "请至少在一个方面（经济上扶持、生活上照顾、学习上帮助、思想上激励）填写帮扶措施。"
    consent = [values.get("consent_by"), values.get("consent_on"), values.get("consent_method")]
    if any(consent) and not all(consent):
        errors["consent_by"] = "监护人知情同意请填写完整：谁、何时、以何种方式同意。"
    status = values.get("status", plan.status)
    if status == SupportPlan.Status.CLOSED and not values.get("close_reason"):
        errors["close_reason"] = "结束帮扶请选择结束原因（类别已解除、转学、毕业或其他）。"
    for prefix, label in PLAN_HEADINGS:
        if values.get(f"{prefix}_due") and not (values.get(f"{prefix}_measures") or "").strip():
            errors[f"{prefix}_measures"] = f"{label}填写了完成时限，请同时填写措施。"
    if errors:
        raise ValidationError(errors)


def _show(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, User):
        return value.display_name
    return str(value)


def _snapshot(plan: SupportPlan) -> dict:
    snapshot = {}
    for name in [*EDITABLE_FIELDS, "last_reviewed_on"]:
        model_field = SupportPlan._meta.get_field(name)
        value = getattr(plan, name)
        if model_field.choices and value:
            value = dict(model_field.flatchoices).get(value, value)
        snapshot[str(model_field.verbose_name)] = _show(value)
    return snapshot


def _diff(before: dict, after: dict) -> dict:
    return {label: [before[label], after[label]] for label in before if before[label] != after[label]}


# --- prompts (daily job) -------------------------------------------------------------------------


@dataclass
class PromptBatch:
    """Per school: students who became special without a plan, and plans to review."""

    new_plan: dict[int, list[Student]] = field(default_factory=lambda: defaultdict(list))
    review: dict[int, list[SupportPlan]] = field(default_factory=lambda: defaultdict(list))


def support_prompts_raise(*, today: datetime.date | None = None) -> PromptBatch:
    """Find the special students with no plan this year and the active plans whose student lost a
    category since the plan was written; mark each once (``SupportPrompt``) and flag the plans for
    review. Returns what is new, per school, for the reminders to send. Safe to re-run."""
    today = today or timezone.localdate()
    year = SchoolYear.current(today)
    batch = PromptBatch()
    if year is None:
        return batch
    with transaction.atomic():
        in_force = StudentCategory.objects.in_force_on(today).filter(category__in=SPECIAL_CATEGORIES)
        without_plan = (
            Student.objects.active()
            .filter(pk__in=in_force.values("student_id"))
            .exclude(support_plans__school_year=year)
            .exclude(
                pk__in=SupportPrompt.objects.filter(school_year=year, kind=SupportPrompt.Kind.NEW_PLAN).values(
                    "student_id"
                )
            )
            .select_related("school_class__head_teacher")
        )
        new = list(without_plan)
        SupportPrompt.objects.bulk_create(
            [SupportPrompt(student=s, school_year=year, kind=SupportPrompt.Kind.NEW_PLAN) for s in new],
            ignore_conflicts=True,
        )
        for student in new:
            batch.new_plan[student.school_id].append(student)

        ended = (
            StudentCategory.objects.filter(
                category__in=(*SPECIAL_CATEGORIES, *CARE_CATEGORIES),
                end__lt=today,
                end__gte=year.start,
                student__support_plans__school_year=year,
                student__support_plans__status=SupportPlan.Status.ACTIVE,
            )
            .exclude(
                pk__in=SupportPrompt.objects.filter(school_year=year, kind=SupportPrompt.Kind.REVIEW).values(
                    "category_row"
                )
            )
            .values_list("pk", "student_id", "end")
        )
        ended = list(ended)
        plans = {
            p.student_id: p
            for p in SupportPlan.objects.select_for_update(of=("self",))
            .filter(school_year=year, student_id__in={row[1] for row in ended})
            .select_related("student__school_class__head_teacher", "responsible_teacher")
        }
        for category_id, student_id, end in ended:
            plan = plans.get(student_id)
            if plan is None or plan.last_reviewed_on and plan.last_reviewed_on > end:
                continue
            SupportPrompt.objects.create(
                student_id=student_id, school_year=year, kind=SupportPrompt.Kind.REVIEW, category_row=category_id
            )
            if plan.review_requested_on is None:
                plan.review_requested_on = today
                plan.review_reason = f"学生的一项类别已于 {end:%Y-%m-%d} 结束，请复核帮扶计划（继续帮扶或结束）。"
                plan.save(update_fields=["review_requested_on", "review_reason", "updated_at"])
                batch.review[plan.school_id].append(plan)
    return batch


def responsible_of(student: Student, plan: SupportPlan | None = None) -> User | None:
    if plan is not None and plan.responsible_teacher_id:
        return plan.responsible_teacher
    return student.school_class.head_teacher if student.school_class_id else None


def plans_due_for_review(*, today: datetime.date | None = None) -> dict[int, list[SupportPlan]]:
    """Active plans of this school year past their review date or flagged for review, per school."""
    today = today or timezone.localdate()
    year = SchoolYear.current(today)
    found: dict[int, list[SupportPlan]] = defaultdict(list)
    if year is None:
        return found
    for plan in (
        SupportPlan.objects.filter(school_year=year, status=SupportPlan.Status.ACTIVE)
        .filter(Q(next_review_on__lt=today) | Q(review_requested_on__isnull=False))
        .select_related("student__school_class__head_teacher", "responsible_teacher")
    ):
        found[plan.school_id].append(plan)
    return found
