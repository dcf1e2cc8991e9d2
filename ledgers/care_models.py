"""The records of the special-student ledgers (DESIGN §3, §6): the support plan (一生一策) with its
history and prompts, the care log (每日一问 / 每周一见), and the school calendar's overrides.

Kept apart from the statistics models (``ledgers.models`` imports this module so that Django finds
them). Writes go through ``ledgers.support``, ``ledgers.care`` and ``ledgers.calendar``.
"""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from schools.models import BUREAU_ROLES, Role, School, SchoolYear, User
from students.models import Student

# The four headings of a plan (一生一策), in the bureau's order: (field prefix, label).
PLAN_HEADINGS = (
    ("economic", "经济上扶持"),
    ("life", "生活上照顾"),
    ("study", "学习上帮助"),
    ("mind", "思想上激励"),
)


class SupportPlanQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SupportPlanQuerySet":
        """The responsible teacher and the head teacher see their students' plans; a school admin the
        school's; zone admins their zone's; the bureau roles every plan (DESIGN §2, §8)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.TEACHER:
            return self.filter(Q(responsible_teacher=user) | Q(student__school_class__head_teacher=user))
        return self.filter(school__in=School.objects.visible_to(user))


class SupportPlan(models.Model):
    """特殊学生帮扶计划（一生一策）: one per special student and school year."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("在帮扶")
        CLOSED = "closed", _("已结束")

    class CloseReason(models.TextChoices):
        CATEGORY_ENDED = "category_ended", _("类别已解除")
        TRANSFERRED = "transferred", _("转学")
        GRADUATED = "graduated", _("毕业")
        OTHER = "other", _("其他")

    class ConsentMethod(models.TextChoices):
        SIGNED = "signed", _("书面签字")
        IN_PERSON = "in_person", _("当面口头")
        PHONE = "phone", _("电话")
        WECHAT = "wechat", _("微信")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    student = models.ForeignKey(Student, verbose_name=_("学生"), on_delete=models.PROTECT, related_name="support_plans")
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="+")
    school_year = models.ForeignKey(SchoolYear, verbose_name=_("学年"), on_delete=models.PROTECT, related_name="+")
    # The special category codes in force when the plan was written or last reviewed.
    categories = models.JSONField(_("帮扶类别"), default=list)
    # Empty: the student's head teacher is responsible.
    responsible_teacher = models.ForeignKey(
        User, verbose_name=_("责任教师"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    consent_by = models.CharField(_("知情同意的监护人"), max_length=50, blank=True)
    consent_on = models.DateField(_("同意日期"), null=True, blank=True)
    consent_method = models.CharField(_("同意方式"), max_length=12, choices=ConsentMethod.choices, blank=True)
    economic_measures = models.TextField(_("经济上扶持·措施"), max_length=1000, blank=True)
    economic_who = models.CharField(_("经济上扶持·责任人"), max_length=50, blank=True)
    economic_due = models.DateField(_("经济上扶持·完成时限"), null=True, blank=True)
    life_measures = models.TextField(_("生活上照顾·措施"), max_length=1000, blank=True)
    life_who = models.CharField(_("生活上照顾·责任人"), max_length=50, blank=True)
    life_due = models.DateField(_("生活上照顾·完成时限"), null=True, blank=True)
    study_measures = models.TextField(_("学习上帮助·措施"), max_length=1000, blank=True)
    study_who = models.CharField(_("学习上帮助·责任人"), max_length=50, blank=True)
    study_due = models.DateField(_("学习上帮助·完成时限"), null=True, blank=True)
    mind_measures = models.TextField(_("思想上激励·措施"), max_length=1000, blank=True)
    mind_who = models.CharField(_("思想上激励·责任人"), max_length=50, blank=True)
    mind_due = models.DateField(_("思想上激励·完成时限"), null=True, blank=True)
    next_review_on = models.DateField(_("下次复核日期"))
    last_reviewed_on = models.DateField(_("上次复核日期"), null=True, blank=True)
    # Set when a category of the student ended: the plan must be reviewed, not silently closed.
    review_requested_on = models.DateField(_("要求复核日期"), null=True, blank=True)
    review_reason = models.CharField(_("复核原因"), max_length=200, blank=True)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    close_reason = models.CharField(_("结束原因"), max_length=20, choices=CloseReason.choices, blank=True)
    closed_on = models.DateField(_("结束日期"), null=True, blank=True)
    created_by = models.ForeignKey(
        User, verbose_name=_("建档人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("建档时间"), default=timezone.now)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    version = models.PositiveIntegerField(default=1)

    objects = SupportPlanQuerySet.as_manager()

    class Meta:
        verbose_name = _("帮扶计划")
        verbose_name_plural = _("帮扶计划")
        ordering = ["school", "student__school_class__grade", "student__school_class__number", "student__name"]
        constraints = [
            models.UniqueConstraint(fields=["student", "school_year"], name="one_support_plan_per_year"),
        ]
        indexes = [models.Index(fields=["school", "school_year", "status"])]

    def __str__(self) -> str:
        return f"{self.student} · {self.school_year}"

    def headings(self) -> list[dict]:
        return [
            {
                "label": label,
                "measures": getattr(self, f"{prefix}_measures"),
                "who": getattr(self, f"{prefix}_who"),
                "due": getattr(self, f"{prefix}_due"),
            }
            for prefix, label in PLAN_HEADINGS
        ]

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class SupportPlanRevision(models.Model):
    """A change to a saved plan: who, when, and each field's value before and after."""

    plan = models.ForeignKey(
        SupportPlan, verbose_name=_("帮扶计划"), on_delete=models.CASCADE, related_name="revisions"
    )
    changed_by = models.ForeignKey(
        User, verbose_name=_("修改人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(_("修改时间"), default=timezone.now)
    changes = models.JSONField(_("修改内容"), default=dict)  # {"field label": ["before", "after"]}

    class Meta:
        verbose_name = _("帮扶计划修改记录")
        verbose_name_plural = _("帮扶计划修改记录")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.changed_at:%Y-%m-%d %H:%M} {self.changed_by}"


class SupportPrompt(models.Model):
    """A prompt sent once: a student became special without a plan (建档), or a category of a student
    with a plan ended (复核). Keeps the daily job from sending the same prompt twice."""

    class Kind(models.TextChoices):
        NEW_PLAN = "new_plan", _("待建档")
        REVIEW = "review", _("待复核")

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="+")
    school_year = models.ForeignKey(SchoolYear, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The category row that raised it (its id), so that a second category raises a second prompt.
    category_row = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("帮扶提醒")
        verbose_name_plural = _("帮扶提醒")
        constraints = [
            models.UniqueConstraint(
                fields=["student", "school_year", "kind", "category_row"], name="one_support_prompt"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} {self.get_kind_display()}"


class CareAsk(models.Model):
    """每日一问: the head teacher asked after a care student on a school day (or the child was away)."""

    class Outcome(models.TextChoices):
        FACE = "face", _("已问·当面")
        PHONE = "phone", _("已问·电话")
        WECHAT = "wechat", _("已问·微信")
        LEAVE = "leave", _("学生请假")
        ABSENT = "absent", _("未到校")

    ASKED = (Outcome.FACE, Outcome.PHONE, Outcome.WECHAT)

    student = models.ForeignKey(Student, verbose_name=_("学生"), on_delete=models.CASCADE, related_name="care_asks")
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("日期"))
    outcome = models.CharField(_("情况"), max_length=8, choices=Outcome.choices)
    reason = models.CharField(_("请假/未到校原因"), max_length=200, blank=True)
    note = models.CharField(_("备注"), max_length=300, blank=True)
    recorded_by = models.ForeignKey(
        User, verbose_name=_("记录人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(_("记录时间"), default=timezone.now)

    class Meta:
        verbose_name = _("每日一问")
        verbose_name_plural = _("每日一问")
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["student", "day"], name="one_care_ask_a_day")]
        indexes = [models.Index(fields=["school", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.student} {self.get_outcome_display()}"


class CareMeeting(models.Model):
    """每周一见: the principal (school admin) met a care student in the week starting ``week_start``."""

    student = models.ForeignKey(Student, verbose_name=_("学生"), on_delete=models.CASCADE, related_name="care_meetings")
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.CASCADE, related_name="+")
    week_start = models.DateField(_("周一日期"))
    met_on = models.DateField(_("见面日期"))
    place = models.CharField(_("地点"), max_length=100, blank=True)
    note = models.CharField(_("备注"), max_length=300, blank=True)
    recorded_by = models.ForeignKey(
        User, verbose_name=_("记录人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(_("记录时间"), default=timezone.now)

    class Meta:
        verbose_name = _("每周一见")
        verbose_name_plural = _("每周一见")
        ordering = ["-week_start"]
        constraints = [models.UniqueConstraint(fields=["student", "week_start"], name="one_care_meeting_a_week")]
        indexes = [models.Index(fields=["school", "week_start"])]

    def __str__(self) -> str:
        return f"{self.met_on} {self.student}"


class ReminderSent(models.Model):
    """A reminder run done for a school and day, so that a beat job run twice sends one digest."""

    kind = models.CharField(max_length=20)
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("已发提醒")
        verbose_name_plural = _("已发提醒")
        constraints = [models.UniqueConstraint(fields=["kind", "school", "day"], name="one_reminder_a_day")]

    def __str__(self) -> str:
        return f"{self.kind} {self.school_id} {self.day}"


class CalendarOverrideQuerySet(models.QuerySet):
    def for_school(self, school_id: int) -> "CalendarOverrideQuerySet":
        return self.filter(Q(school__isnull=True) | Q(school_id=school_id))


class CalendarOverride(models.Model):
    """A change to the school calendar: by the bureau for the county (``school`` empty) or by a school
    admin for the school. A term bounds the school days; a local holiday or closure removes days; an
    extra workday adds one (DESIGN §3)."""

    class Kind(models.TextChoices):
        TERM = "term", _("学期")
        HOLIDAY = "holiday", _("地方假日")
        CLOSURE = "closure", _("停课")
        WORKDAY = "workday", _("补课/上课日")

    school = models.ForeignKey(
        School, verbose_name=_("学校"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices)
    start = models.DateField(_("开始日期"))
    end = models.DateField(_("结束日期"))
    name = models.CharField(_("名称"), max_length=50)
    created_by = models.ForeignKey(
        User, verbose_name=_("设置人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("设置时间"), default=timezone.now)

    objects = CalendarOverrideQuerySet.as_manager()

    class Meta:
        verbose_name = _("校历调整")
        verbose_name_plural = _("校历调整")
        ordering = ["start", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gte=models.F("start")), name="calendar_override_end_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name}"


__all__ = [
    "PLAN_HEADINGS",
    "CalendarOverride",
    "CareAsk",
    "CareMeeting",
    "ReminderSent",
    "SupportPlan",
    "SupportPlanRevision",
    "SupportPrompt",
]
