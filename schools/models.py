"""The organisation: county bureau → zone → school → class, the accounts that work in it, and the
campaign calendar. Every scoped model has a ``visible_to(user)`` queryset method; views reach
objects only through those (see ``schools.scoping``)."""

import datetime
import uuid
from typing import NoReturn

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    TEACHER = "teacher", _("任课教师")
    SCHOOL_ADMIN = "school_admin", _("学校管理员")
    ZONE_ADMIN = "zone_admin", _("片区管理员")
    INSPECTOR = "inspector", _("教育局包联领导")
    BUREAU_ADMIN = "bureau_admin", _("教育局管理员")


SCHOOL_ROLES = (Role.TEACHER, Role.SCHOOL_ADMIN)
BUREAU_ROLES = (Role.INSPECTOR, Role.BUREAU_ADMIN)
# The county's roles: they read schools in their scope with masked identifiers (DESIGN §2, §8).
COUNTY_ROLES = (Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)


class Grade(models.IntegerChoices):
    K1 = -2, _("小班")
    K2 = -1, _("中班")
    K3 = 0, _("大班")
    G1 = 1, _("一年级")
    G2 = 2, _("二年级")
    G3 = 3, _("三年级")
    G4 = 4, _("四年级")
    G5 = 5, _("五年级")
    G6 = 6, _("六年级")
    G7 = 7, _("七年级")
    G8 = 8, _("八年级")
    G9 = 9, _("九年级")
    G10 = 10, _("高一")
    G11 = 11, _("高二")
    G12 = 12, _("高三")


class ZoneQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ZoneQuerySet":
        """The bureau roles see every zone; a zone admin their own; no one else sees a zone as such
        (a school's people reach its name through their school)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.ZONE_ADMIN and user.zone_id:
            return self.filter(pk=user.zone_id)
        return self.none()


class Zone(models.Model):
    name = models.CharField(_("片区名称"), max_length=64, unique=True)
    code = models.CharField(_("片区代码"), max_length=32, unique=True)

    objects = ZoneQuerySet.as_manager()

    class Meta:
        verbose_name = _("片区")
        verbose_name_plural = _("片区")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class SchoolQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SchoolQuerySet":
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.ZONE_ADMIN:
            return self.filter(zone_id=user.zone_id) if user.zone_id else self.none()
        return self.filter(pk=user.school_id) if user.school_id else self.none()


class School(models.Model):
    class Kind(models.TextChoices):
        KINDERGARTEN = "kindergarten", _("幼儿园")
        PRIMARY = "primary", _("小学")
        JUNIOR = "junior", _("初中")
        SENIOR = "senior", _("高中")
        NINE_YEAR = "nine_year", _("九年一贯制")
        COMPLETE = "complete", _("完全中学")
        TEACHING_POINT = "teaching_point", _("教学点")

    zone = models.ForeignKey(Zone, verbose_name=_("片区"), on_delete=models.PROTECT, related_name="schools")
    name = models.CharField(_("学校名称"), max_length=100, unique=True)
    code = models.CharField(_("学校代码"), max_length=32, unique=True)
    kind = models.CharField(_("学校类型"), max_length=20, choices=Kind.choices)
    address = models.CharField(_("地址"), max_length=200, blank=True)
    contact_name = models.CharField(_("联系人"), max_length=50, blank=True)
    contact_phone = models.CharField(_("联系电话"), max_length=30, blank=True)
    safety_grace_minutes = models.PositiveSmallIntegerField(
        _("报平安宽限（分钟）"), default=30, help_text=_("预计返回时间过后多久仍未报平安即视为超时。")
    )
    # Set when a visit or the roster changes; the statistics job recomputes the school and clears it.
    statistics_stale_since = models.DateTimeField(_("统计待更新时间"), null=True, blank=True, editable=False)

    objects = SchoolQuerySet.as_manager()

    class Meta:
        verbose_name = _("学校")
        verbose_name_plural = _("学校")
        ordering = ["zone__code", "code"]

    def __str__(self) -> str:
        return self.name


class UserQuerySet(models.QuerySet):
    def visible_to(self, user) -> "UserQuerySet":
        """Staff accounts a user may see: colleagues of the schools in their scope."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        schools = School.objects.visible_to(user)
        return self.filter(school__in=schools)


class HomevisitUserManager(UserManager.from_queryset(UserQuerySet)):
    pass


class User(AbstractUser):
    """An account. Usernames are usually the mobile number, as teachers know it by heart."""

    role = models.CharField(_("角色"), max_length=20, choices=Role.choices, default=Role.TEACHER)
    real_name = models.CharField(_("姓名"), max_length=50)
    phone = models.CharField(_("手机号"), max_length=20, blank=True)
    school = models.ForeignKey(
        School, verbose_name=_("学校"), null=True, blank=True, on_delete=models.PROTECT, related_name="staff"
    )
    zone = models.ForeignKey(
        Zone, verbose_name=_("片区"), null=True, blank=True, on_delete=models.PROTECT, related_name="admins"
    )
    must_change_password = models.BooleanField(_("首次登录须改密码"), default=False)

    objects = HomevisitUserManager()

    class Meta:
        verbose_name = _("账号")
        verbose_name_plural = _("账号")
        ordering = ["username"]

    def __str__(self) -> str:
        return self.real_name or self.username

    def clean(self) -> None:
        super().clean()
        if self.role in SCHOOL_ROLES and not self.school_id:
            raise ValidationError({"school": _("教师和学校管理员必须属于一所学校。")})
        if self.role == Role.ZONE_ADMIN and not self.zone_id:
            raise ValidationError({"zone": _("片区管理员必须指定片区。")})

    @property
    def display_name(self) -> str:
        return self.real_name or self.username

    @property
    def is_school_staff(self) -> bool:
        return self.role in SCHOOL_ROLES

    @property
    def is_head_teacher(self) -> bool:
        return self.role == Role.TEACHER and self.headed_classes.exists()


class SchoolYear(models.Model):
    """A school year (学年), e.g. 2026-2027, running from September to the next summer."""

    name = models.CharField(_("学年"), max_length=20, unique=True)
    start = models.DateField(_("开始日期"))
    end = models.DateField(_("结束日期"))

    class Meta:
        verbose_name = _("学年")
        verbose_name_plural = _("学年")
        ordering = ["-start"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": _("结束日期必须晚于开始日期。")})

    @classmethod
    def current(cls, today: datetime.date | None = None) -> "SchoolYear | None":
        today = today or timezone.localdate()
        return cls.objects.filter(start__lte=today, end__gte=today).first() or cls.objects.first()


class SchoolClassQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SchoolClassQuerySet":
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role == Role.TEACHER:
            return self.filter(Q(head_teacher=user) | Q(assignments__teacher=user)).distinct()
        return self.filter(school__in=School.objects.visible_to(user))


class SchoolClass(models.Model):
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="classes")
    school_year = models.ForeignKey(
        SchoolYear, verbose_name=_("学年"), on_delete=models.PROTECT, related_name="classes"
    )
    grade = models.IntegerField(_("年级"), choices=Grade.choices)
    number = models.PositiveSmallIntegerField(_("班号"))
    head_teacher = models.ForeignKey(
        User,
        verbose_name=_("班主任"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="headed_classes",
    )

    objects = SchoolClassQuerySet.as_manager()

    class Meta:
        verbose_name = _("班级")
        verbose_name_plural = _("班级")
        ordering = ["school", "grade", "number"]
        constraints = [
            models.UniqueConstraint(fields=["school", "school_year", "grade", "number"], name="unique_class_per_year"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return f"{Grade(self.grade).label}（{self.number}）班"

    def clean(self) -> None:
        if self.head_teacher_id and self.head_teacher.school_id != self.school_id:
            raise ValidationError({"head_teacher": _("班主任必须是本校教师。")})


class TeachingAssignment(models.Model):
    """A teacher teaches a class (任课); head teachers are on ``SchoolClass.head_teacher``."""

    teacher = models.ForeignKey(User, verbose_name=_("教师"), on_delete=models.CASCADE, related_name="assignments")
    school_class = models.ForeignKey(
        SchoolClass, verbose_name=_("班级"), on_delete=models.CASCADE, related_name="assignments"
    )
    subject = models.CharField(_("任教学科"), max_length=30, blank=True)

    class Meta:
        verbose_name = _("任课安排")
        verbose_name_plural = _("任课安排")
        constraints = [
            models.UniqueConstraint(fields=["teacher", "school_class"], name="unique_teaching_assignment"),
        ]

    def __str__(self) -> str:
        return f"{self.teacher} · {self.school_class}"


class InspectorAssignment(models.Model):
    """An inspector's assigned school (包联学校)."""

    inspector = models.ForeignKey(
        User,
        verbose_name=_("包联领导"),
        on_delete=models.CASCADE,
        related_name="inspector_assignments",
        limit_choices_to={"role": Role.INSPECTOR},
    )
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.CASCADE, related_name="inspectors")

    class Meta:
        verbose_name = _("包联学校")
        verbose_name_plural = _("包联学校")
        constraints = [
            models.UniqueConstraint(fields=["inspector", "school"], name="unique_inspector_assignment"),
        ]

    def __str__(self) -> str:
        return f"{self.inspector} · {self.school}"


class Campaign(models.Model):
    """One year's 「万名教师大家访」 campaign; its phases carry the dates."""

    year = models.PositiveSmallIntegerField(_("年度"), unique=True)
    name = models.CharField(_("活动名称"), max_length=100)
    school_year = models.ForeignKey(
        SchoolYear, verbose_name=_("学年"), null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    # The dashboards' progress line runs from 0 at a phase's start to this at its end.
    coverage_target = models.PositiveSmallIntegerField(
        _("目标家访率（%）"),
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("每个阶段结束时应达到的家访率；看板按从阶段开始到结束的直线计算“今天应达到”的进度。"),
    )

    class Meta:
        verbose_name = _("家访活动")
        verbose_name_plural = _("家访活动")
        ordering = ["-year"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def current(cls, today: datetime.date | None = None) -> "Campaign | None":
        today = today or timezone.localdate()
        return cls.objects.filter(year=today.year).first() or cls.objects.filter(year__lt=today.year).first()

    def phase_on(self, day: datetime.date) -> "Phase | None":
        return self.phases.filter(start__lte=day, end__gte=day).first()


class Phase(models.Model):
    class Kind(models.TextChoices):
        PLAN = "plan", _("计划")
        FULL_ROUND = "full_round", _("第一轮全员家访")
        REVIEW = "review", _("梳理研判")
        REVISIT = "revisit", _("第二轮重点回访")
        SUMMARY = "summary", _("总结")

    campaign = models.ForeignKey(Campaign, verbose_name=_("家访活动"), on_delete=models.CASCADE, related_name="phases")
    kind = models.CharField(_("阶段"), max_length=20, choices=Kind.choices)
    start = models.DateField(_("开始日期"))
    end = models.DateField(_("结束日期"))

    class Meta:
        verbose_name = _("活动阶段")
        verbose_name_plural = _("活动阶段")
        ordering = ["campaign", "start"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "kind"], name="unique_phase_kind"),
            models.CheckConstraint(condition=Q(end__gte=models.F("start")), name="phase_end_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}（{self.start:%m月%d日}—{self.end:%m月%d日}）"

    def clean(self) -> None:
        if self.start and self.end and self.end < self.start:
            raise ValidationError({"end": _("结束日期不能早于开始日期。")})
        if self.campaign_id and self.start and self.end:
            overlapping = Phase.objects.filter(campaign_id=self.campaign_id, start__lte=self.end, end__gte=self.start)
            if self.pk:
                overlapping = overlapping.exclude(pk=self.pk)
            if overlapping.exists():
                raise ValidationError(_("阶段日期与同一活动的其他阶段重叠：一次家访只能属于一个阶段。"))


class AuditLogIsAppendOnly(Exception):
    """Raised by any attempt to change or delete an audit row outside the retention purge."""


class AuditEventQuerySet(models.QuerySet):
    """Rows are only ever added: bulk updates and deletes are refused. The one way to remove rows is
    ``purge_before``, used by the ``audit_purge`` retention command."""

    def update(self, **kwargs) -> NoReturn:
        raise AuditLogIsAppendOnly("审计日志只能追加，不能修改。")

    def delete(self) -> NoReturn:
        raise AuditLogIsAppendOnly("审计日志只能追加，不能删除；过期记录请用 audit_purge 命令清理。")

    def purge_before(self, moment: datetime.datetime, *, batch_size: int = 5000) -> int:
        """Delete the rows of this queryset older than ``moment`` in batches of ``batch_size``;
        return how many.

        The explicit bypass of ``delete()``: a plain queryset of the base manager removes each batch
        by primary key, so that no single statement holds a lock on the whole table."""
        deleted = 0
        older = self.filter(at__lt=moment).order_by("pk").values_list("pk", flat=True)
        while True:
            batch = list(older[:batch_size])
            if not batch:
                return deleted
            count, _by_model = AuditEvent._base_manager.filter(pk__in=batch).delete()
            deleted += count


class AuditEvent(models.Model):
    """Append-only record of who did what, when and from where. A row is never updated; rows are
    removed only by the retention purge (``AuditEventQuerySet.purge_before``)."""

    class Action(models.TextChoices):
        DENIED = "denied", _("越权访问")
        LOGIN = "login", _("登录")
        LOGIN_FAILED = "login_failed", _("登录失败")
        LOGOUT = "logout", _("退出")
        IMPORT = "import", _("导入")
        EXPORT = "export", _("导出")
        VIEW = "view", _("查看敏感信息")
        CHANGE = "change", _("修改")

    at = models.DateTimeField(_("时间"), default=timezone.now, db_index=True)
    user = models.ForeignKey(User, verbose_name=_("用户"), null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(_("用户名"), max_length=150, blank=True)
    action = models.CharField(_("操作"), max_length=20, choices=Action.choices)
    object_type = models.CharField(_("对象类型"), max_length=50, blank=True)
    object_id = models.CharField(_("对象"), max_length=64, blank=True)
    ip = models.GenericIPAddressField(_("IP 地址"), null=True, blank=True)
    path = models.CharField(_("请求路径"), max_length=300, blank=True)
    detail = models.JSONField(_("详情"), default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("审计日志")
        verbose_name_plural = _("审计日志")
        ordering = ["-at"]
        # A student's access history looks rows up by the object they name, newest first.
        indexes = [models.Index(fields=["object_id", "at"], name="audit_object_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.get_action_display()}"

    def save(self, *args, **kwargs) -> None:
        """Insert only: saving a row that is already stored is refused."""
        if not self._state.adding:
            raise AuditLogIsAppendOnly("审计日志只能追加，不能修改。")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs) -> NoReturn:
        raise AuditLogIsAppendOnly("审计日志只能追加，不能删除；过期记录请用 audit_purge 命令清理。")


class ImportJobQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ImportJobQuerySet":
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role == Role.BUREAU_ADMIN:
            return self.all()
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return self.filter(school_id=user.school_id)
        return self.none()


class ImportJob(models.Model):
    """An uploaded roster or staff file, validated then applied by Celery tasks."""

    class Kind(models.TextChoices):
        ROSTER = "roster", _("学生名册")
        STAFF = "staff", _("教职工名单")

    class Status(models.TextChoices):
        VALIDATING = "validating", _("正在校验")
        VALIDATED = "validated", _("待确认")
        IMPORTING = "importing", _("正在导入")
        DONE = "done", _("已导入")
        FAILED = "failed", _("失败")
        CANCELLED = "cancelled", _("已取消")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices)
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.CASCADE, related_name="import_jobs")
    uploaded_by = models.ForeignKey(User, verbose_name=_("上传人"), null=True, on_delete=models.SET_NULL)
    file_name = models.CharField(_("文件名"), max_length=200)
    sha256 = models.CharField(max_length=64)
    status = models.CharField(_("状态"), max_length=12, choices=Status.choices, default=Status.VALIDATING)
    total_rows = models.PositiveIntegerField(_("数据行数"), default=0)
    processed_rows = models.PositiveIntegerField(_("已处理行数"), default=0)
    valid_rows = models.PositiveIntegerField(_("有效行数"), default=0)
    invalid_rows = models.PositiveIntegerField(_("错误行数"), default=0)
    # [{"row": 5, "column": "身份证件号", "message": "..."}]: every problem found, in row order.
    problems = models.JSONField(_("问题"), default=list, blank=True)
    # Counts of what validation expects to do, then of what applying did: {"created": 3, ...}.
    preview = models.JSONField(_("预览"), default=dict, blank=True)
    result = models.JSONField(_("结果"), default=dict, blank=True)
    error = models.TextField(_("错误信息"), blank=True)
    created_at = models.DateTimeField(_("上传时间"), auto_now_add=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    objects = ImportJobQuerySet.as_manager()

    class Meta:
        verbose_name = _("导入任务")
        verbose_name_plural = _("导入任务")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.file_name}"

    @property
    def file_path(self):
        from django.conf import settings

        return settings.PRIVATE_FILES_ROOT / "imports" / f"{self.public_id}.xlsx"

    @property
    def is_running(self) -> bool:
        return self.status in (self.Status.VALIDATING, self.Status.IMPORTING)

    @property
    def progress_percent(self) -> int:
        if not self.total_rows:
            return 0
        return min(100, round(100 * self.processed_rows / self.total_rows))


class CampaignTarget(models.Model):
    """The bureau's target rates for a campaign (issue 12): for the county (no zone, no school), a zone,
    or a school. A unit without its own target follows its zone's, then the county's, then the
    campaign's ``coverage_target`` (see ``schools.targets``). Rates are percentages 1–100."""

    campaign = models.ForeignKey(Campaign, verbose_name=_("家访活动"), on_delete=models.CASCADE, related_name="targets")
    zone = models.ForeignKey(Zone, verbose_name=_("片区"), null=True, blank=True, on_delete=models.CASCADE)
    school = models.ForeignKey(School, verbose_name=_("学校"), null=True, blank=True, on_delete=models.CASCADE)
    coverage = models.PositiveSmallIntegerField(
        _("目标家访率（%）"), validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    participation = models.PositiveSmallIntegerField(
        _("目标走访率（%）"), validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    focus_coverage = models.PositiveSmallIntegerField(
        _("重点关注学生目标家访率（%）"), validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    special_in_home = models.PositiveSmallIntegerField(
        _("特殊学生入户 2 次目标达标率（%）"), validators=[MinValueValidator(1), MaxValueValidator(100)]
    )

    class Meta:
        verbose_name = _("目标")
        verbose_name_plural = _("目标")
        constraints = [
            models.CheckConstraint(
                condition=Q(zone__isnull=True) | Q(school__isnull=True), name="target_zone_or_school_not_both"
            ),
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(zone__isnull=True, school__isnull=True), name="one_county_target"
            ),
            models.UniqueConstraint(
                fields=["campaign", "zone"], condition=Q(zone__isnull=False), name="one_target_per_zone"
            ),
            models.UniqueConstraint(
                fields=["campaign", "school"], condition=Q(school__isnull=False), name="one_target_per_school"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} · {self.school or self.zone or '全县'}"
