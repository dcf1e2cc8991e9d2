"""Oversight of the campaign (督查考核, DESIGN §2 and §6): the school's review of submitted records
(审核), random back-checks of visits (抽查回访) and inspection records with rectification (督查记录、整改).

Each scoped model has ``visible_to(user)``; views reach them only through ``schools.scoping``.
"""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from schools.models import BUREAU_ROLES, Phase, Role, School, User
from visits.models import Method, PrivateFile, Visit


def inspected_schools(user) -> models.QuerySet:
    """The schools a user may draw back-check samples for and inspect: an inspector their 包联学校,
    a school admin their own school, the bureau admin every school; nobody else any."""
    if not user.is_authenticated or not user.is_active:
        return School.objects.none()
    if user.role == Role.BUREAU_ADMIN:
        return School.objects.all()
    if user.role == Role.INSPECTOR:
        return School.objects.filter(inspectors__inspector=user)
    if user.role == Role.SCHOOL_ADMIN and user.school_id:
        return School.objects.filter(pk=user.school_id)
    return School.objects.none()


# --- review (审核) --------------------------------------------------------------------------------


class ReviewSetting(models.Model):
    """A school's choice to review its submitted records. No row means no review: the school keeps
    the behaviour it had before review existed (every submitted record counts at once)."""

    class Mode(models.TextChoices):
        OFF = "off", _("不审核")
        ADMIN = "admin", _("学校管理员审核")
        HEAD_TEACHER = "head_teacher", _("学校管理员审核，班主任也可审核本班")

    school = models.OneToOneField(School, verbose_name=_("学校"), on_delete=models.CASCADE, related_name="review")
    mode = models.CharField(_("审核方式"), max_length=20, choices=Mode.choices, default=Mode.OFF)
    changed_by = models.ForeignKey(User, verbose_name=_("设置人"), null=True, on_delete=models.SET_NULL)
    changed_at = models.DateTimeField(_("设置时间"), default=timezone.now)

    class Meta:
        verbose_name = _("审核设置")
        verbose_name_plural = _("审核设置")

    def __str__(self) -> str:
        return f"{self.school} · {self.get_mode_display()}"


class ReviewStep(models.Model):
    """One step of a record's review: accepted (已审核) or sent back (退回) with the reason. The
    resubmission is kept in the record's own history (``visits.Revision``, 状态 已退回 → 已提交)."""

    class Action(models.TextChoices):
        ACCEPTED = "accepted", _("审核通过")
        RETURNED = "returned", _("退回")

    visit = models.ForeignKey(Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="review_steps")
    action = models.CharField(_("审核结果"), max_length=10, choices=Action.choices)
    reason = models.CharField(_("退回原因"), max_length=300, blank=True)
    reviewer = models.ForeignKey(User, verbose_name=_("审核人"), null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(_("审核时间"), default=timezone.now)

    class Meta:
        verbose_name = _("审核记录")
        verbose_name_plural = _("审核记录")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["visit", "action"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.at:%Y-%m-%d %H:%M}"


class ReviewCount(models.Model):
    """A school's review figures, stored so that dashboards never read the visit table (DESIGN §7):
    refreshed by the review services and whenever the school's visits change
    (``oversight.receivers``)."""

    school = models.OneToOneField(School, on_delete=models.CASCADE, related_name="review_count")
    accepted = models.PositiveIntegerField(_("已审核"), default=0)
    returned = models.PositiveIntegerField(_("已退回"), default=0)
    awaiting = models.PositiveIntegerField(_("待审核"), default=0)
    computed_at = models.DateTimeField(_("计算时间"), default=timezone.now)

    class Meta:
        verbose_name = _("审核统计")
        verbose_name_plural = _("审核统计")

    def __str__(self) -> str:
        return f"{self.school} {self.accepted}/{self.returned}/{self.awaiting}"


# --- back-checks (抽查回访) ---------------------------------------------------------------------------


class SampleQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SampleQuerySet":
        """The bureau admin sees every sample; an inspector the samples of their 包联学校 and those
        they drew; a school admin the samples the school drew itself (not the bureau's: a school that
        knew which families will be called could prepare them); nobody else any."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role == Role.BUREAU_ADMIN:
            return self.all()
        if user.role == Role.INSPECTOR:
            return self.filter(Q(school__inspectors__inspector=user) | Q(drawn_by=user)).distinct()
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return self.filter(school_id=user.school_id, drawn_by__role=Role.SCHOOL_ADMIN)
        return self.none()


class BackCheckSample(models.Model):
    """A random sample of a school's submitted visits, drawn reproducibly: the same filters over the
    same records with the stored ``seed`` give the same visits (see ``oversight.services``)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="samples")
    phase = models.ForeignKey(Phase, verbose_name=_("阶段"), null=True, blank=True, on_delete=models.PROTECT)
    method = models.CharField(_("家访方式"), max_length=12, choices=Method.choices, blank=True)
    flagged_only = models.BooleanField(_("只抽有质量提示的记录"), default=False)
    size = models.PositiveIntegerField(_("抽取条数"))
    population = models.PositiveIntegerField(_("符合条件的记录数"))
    seed = models.BigIntegerField(_("随机种子"))
    drawn_by = models.ForeignKey(User, verbose_name=_("抽取人"), on_delete=models.PROTECT, related_name="+")
    drawn_at = models.DateTimeField(_("抽取时间"), default=timezone.now)

    objects = SampleQuerySet.as_manager()

    class Meta:
        verbose_name = _("抽查回访批次")
        verbose_name_plural = _("抽查回访批次")
        ordering = ["-drawn_at", "-id"]

    def __str__(self) -> str:
        return f"{self.school} {self.drawn_at:%Y-%m-%d} {self.size} 条"

    def filters_label(self) -> str:
        parts = [self.phase.get_kind_display() if self.phase else "全部阶段"]
        parts.append(self.get_method_display() if self.method else "全部方式")
        if self.flagged_only:
            parts.append("仅有质量提示的记录")
        return "，".join(parts)


class BackCheckQuerySet(models.QuerySet):
    def visible_to(self, user) -> "BackCheckQuerySet":
        """The checks of the samples the user sees."""
        return self.filter(sample__in=BackCheckSample.objects.visible_to(user))


class BackCheck(models.Model):
    """One sampled visit and what the call or visit to the family found."""

    class Outcome(models.TextChoices):
        TRUE = "true", _("属实")
        UNTRUE = "untrue", _("与记录不符")
        UNREACHABLE = "unreachable", _("联系不上")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sample = models.ForeignKey(
        BackCheckSample, verbose_name=_("抽查批次"), on_delete=models.CASCADE, related_name="checks"
    )
    visit = models.ForeignKey(Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="back_checks")
    # Copied from the visit when drawn: the assessment and dashboards count by it without the visit table.
    lead_teacher = models.ForeignKey(
        User, verbose_name=_("家访教师"), null=True, on_delete=models.SET_NULL, related_name="back_checks"
    )
    outcome = models.CharField(_("回访结果"), max_length=12, choices=Outcome.choices, blank=True)
    note = models.CharField(_("回访说明"), max_length=500, blank=True)
    checked_by = models.ForeignKey(
        User, verbose_name=_("回访人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    checked_at = models.DateTimeField(_("回访时间"), null=True, blank=True)

    objects = BackCheckQuerySet.as_manager()

    class Meta:
        verbose_name = _("抽查回访")
        verbose_name_plural = _("抽查回访")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["sample", "visit"], name="unique_visit_per_sample")]
        indexes = [models.Index(fields=["visit", "outcome"])]

    def __str__(self) -> str:
        return f"{self.visit} {self.get_outcome_display() or '待回访'}"


# --- inspections (督查记录) and rectification (整改) ------------------------------------------------


class InspectionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "InspectionQuerySet":
        """DESIGN §2: the bureau roles see every inspection, a zone admin those of the zone's schools,
        a school admin the school's own; teachers none."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.ZONE_ADMIN:
            return self.filter(school__zone_id=user.zone_id) if user.zone_id else self.none()
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return self.filter(school_id=user.school_id)
        return self.none()

    def overdue(self, today) -> "InspectionQuerySet":
        """Rectifications past their deadline and not yet accepted."""
        return self.filter(deadline__lt=today).exclude(
            status__in=[Inspection.Status.NO_RECTIFICATION, Inspection.Status.ACCEPTED]
        )


class Inspection(models.Model):
    """督查记录: an inspector's inspection of one of their schools, with the rectification it requires."""

    class How(models.TextChoices):
        ON_SITE = "on_site", _("实地督查")
        LEDGERS = "ledgers", _("查阅台账")
        PHONE = "phone", _("电话抽查")

    class Status(models.TextChoices):
        NO_RECTIFICATION = "none", _("无需整改")
        OPEN = "open", _("待整改")
        REPORTED = "reported", _("整改待验收")
        SENT_BACK = "sent_back", _("验收退回")
        ACCEPTED = "accepted", _("整改已验收")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="inspections")
    inspector = models.ForeignKey(User, verbose_name=_("督查人"), on_delete=models.PROTECT, related_name="inspections")
    date = models.DateField(_("督查日期"))
    how = models.CharField(_("督查方式"), max_length=10, choices=How.choices)
    findings = models.TextField(_("发现问题"), max_length=4000)
    rectification = models.TextField(_("整改要求"), max_length=2000, blank=True)
    deadline = models.DateField(_("整改期限"), null=True, blank=True)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices)
    created_at = models.DateTimeField(_("填报时间"), auto_now_add=True)

    objects = InspectionQuerySet.as_manager()

    class Meta:
        verbose_name = _("督查记录")
        verbose_name_plural = _("督查记录")
        ordering = ["-date", "-id"]
        indexes = [models.Index(fields=["school", "status"]), models.Index(fields=["status", "deadline"])]

    def __str__(self) -> str:
        return f"{self.school} {self.date:%Y-%m-%d}"

    def is_overdue(self, today=None) -> bool:
        today = today or timezone.localdate()
        return (
            self.deadline is not None
            and self.deadline < today
            and self.status not in (self.Status.NO_RECTIFICATION, self.Status.ACCEPTED)
        )


class RectificationStep(models.Model):
    """One step of a rectification: the school's report of what was done, or the inspector's
    acceptance or sending back, with its text."""

    class Action(models.TextChoices):
        REPORTED = "reported", _("学校报告整改情况")
        ACCEPTED = "accepted", _("验收通过")
        SENT_BACK = "sent_back", _("验收退回")

    inspection = models.ForeignKey(
        Inspection, verbose_name=_("督查记录"), on_delete=models.CASCADE, related_name="steps"
    )
    action = models.CharField(_("环节"), max_length=10, choices=Action.choices)
    text = models.TextField(_("说明"), max_length=2000)
    by = models.ForeignKey(User, verbose_name=_("填写人"), null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(_("时间"), default=timezone.now)

    class Meta:
        verbose_name = _("整改环节")
        verbose_name_plural = _("整改环节")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.at:%Y-%m-%d}"


class RectificationFileQuerySet(models.QuerySet):
    def visible_to(self, user) -> "RectificationFileQuerySet":
        return self.filter(step__inspection__in=Inspection.objects.visible_to(user))


class RectificationFile(PrivateFile):
    """A photo or scan of the rectification."""

    FOLDER = "rectifications"

    step = models.ForeignKey(
        RectificationStep, verbose_name=_("整改环节"), on_delete=models.CASCADE, related_name="files"
    )

    objects = RectificationFileQuerySet.as_manager()

    class Meta:
        verbose_name = _("整改附件")
        verbose_name_plural = _("整改附件")
        ordering = ["id"]


# --- the best visits chosen (家访日志评选) ------------------------------------------------------------


class ExcellentCaseQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ExcellentCaseQuerySet":
        """The selection itself (nominations, shortlist): the bureau roles see every case, a zone admin
        those of the zone's schools, a school admin the school's own; teachers none. The chosen
        cases everyone reads are ``published()``."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.ZONE_ADMIN:
            return self.filter(school__zone_id=user.zone_id) if user.zone_id else self.none()
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return self.filter(school_id=user.school_id)
        return self.none()

    def published(self) -> "ExcellentCaseQuerySet":
        """Chosen, and its public text reviewed by the school: what all staff of the county read."""
        return self.filter(status=ExcellentCase.Status.CHOSEN, text_reviewed_at__isnull=False)


class ExcellentCase(models.Model):
    """优秀家访案例: a visit record nominated by its school, then shortlisted and chosen by the bureau
    (nominated → shortlisted → chosen). What is shown to the county is ``public_text``: written from
    the record with names, addresses and contacts taken out, and reviewed by the school's admin; the
    record's photos are never shown."""

    class Status(models.TextChoices):
        NOMINATED = "nominated", _("已推荐")
        SHORTLISTED = "shortlisted", _("入围")
        CHOSEN = "chosen", _("评选为优秀案例")
        NOT_CHOSEN = "not_chosen", _("未入选")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    visit = models.OneToOneField(
        Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="excellent_case"
    )
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="excellent_cases")
    # Copied from the record: the assessment counts by it without the visit table.
    teacher = models.ForeignKey(
        User, verbose_name=_("家访教师"), on_delete=models.PROTECT, related_name="excellent_cases"
    )
    campaign = models.ForeignKey(
        "schools.Campaign", verbose_name=_("家访活动"), on_delete=models.PROTECT, related_name="excellent_cases"
    )
    reason = models.CharField(_("推荐理由"), max_length=300)
    title = models.CharField(_("案例标题"), max_length=60)
    public_text = models.TextField(_("公开展示的内容"), max_length=3000)
    text_reviewed_by = models.ForeignKey(
        User, verbose_name=_("内容审核人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text_reviewed_at = models.DateTimeField(_("内容审核时间"), null=True, blank=True)
    status = models.CharField(_("评选状态"), max_length=12, choices=Status.choices, default=Status.NOMINATED)
    nominated_by = models.ForeignKey(User, verbose_name=_("推荐人"), on_delete=models.PROTECT, related_name="+")
    nominated_at = models.DateTimeField(_("推荐时间"), default=timezone.now)
    decided_by = models.ForeignKey(
        User, verbose_name=_("评选人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(_("评选时间"), null=True, blank=True)

    objects = ExcellentCaseQuerySet.as_manager()

    class Meta:
        verbose_name = _("优秀家访案例")
        verbose_name_plural = _("优秀家访案例")
        ordering = ["-nominated_at", "-id"]
        indexes = [models.Index(fields=["campaign", "status"])]

    def __str__(self) -> str:
        return self.title
