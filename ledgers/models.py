"""The ledgers (台账, DESIGN §6) and the stored statistics they report (DESIGN §7).

Statistics are computed by Celery jobs (``ledgers.statistics``) into ``UnitStatistics``: one row
per unit (class, school, zone, county), campaign and period (the whole campaign, or one phase).
Dashboards and the statistics sheet read only these rows, never the visit table.
"""

import uuid
from decimal import ROUND_HALF_UP, Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from schools.models import BUREAU_ROLES, Campaign, Role, School, Zone
from visits.periods import WHOLE_CAMPAIGN as PERIOD_WHOLE_CAMPAIGN


class Level(models.TextChoices):
    COUNTY = "county", _("全县")
    ZONE = "zone", _("片区")
    SCHOOL = "school", _("学校")
    CLASS = "class", _("班级")


# The period of a row: the whole campaign, or one phase (a ``Phase.Kind`` value). Defined with the
# periods themselves (``visits.periods``), which the engine and the teacher's pages both count by.
WHOLE_CAMPAIGN = PERIOD_WHOLE_CAMPAIGN


def rate(numerator: int, denominator: int) -> Decimal | None:
    """A percentage with one decimal, or None when the denominator is zero (shown 「—」)."""
    if not denominator:
        return None
    return (Decimal(numerator) * 100 / Decimal(denominator)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


class UnitStatisticsQuerySet(models.QuerySet):
    def visible_to(self, user) -> "UnitStatisticsQuerySet":
        """The bureau roles see every unit; a zone admin the zone, its schools and their classes;
        a school admin the school and its classes. Teachers read no statistics here."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.ZONE_ADMIN and user.zone_id:
            return self.filter(zone_id=user.zone_id)
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return self.filter(school_id=user.school_id)
        return self.none()


class UnitStatistics(models.Model):
    """Every figure of the statistics sheet and the further indicators for one unit and period.

    Units are partitions of one another: a student counts in the school and class they are on the
    roster of, a member of staff in the school whose staff they are, a visit in the school that
    filed it. So a zone's row is the sum of its schools' rows, and distinct counts stay distinct.
    """

    campaign = models.ForeignKey(Campaign, verbose_name=_("家访活动"), on_delete=models.CASCADE, related_name="+")
    period = models.CharField(_("统计期间"), max_length=20)
    level = models.CharField(_("单位层级"), max_length=10, choices=Level.choices)
    unit_id = models.PositiveIntegerField(_("单位"))  # class, school or zone id; 0 for the county
    name = models.CharField(_("单位名称"), max_length=100)
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    school = models.ForeignKey(School, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    sort_key = models.CharField(max_length=40, blank=True)

    # The sheet's columns (DESIGN §7).
    staff_total = models.PositiveIntegerField(_("教职工总数"), default=0)
    teachers_participating = models.PositiveIntegerField(_("参与家访教师数量"), default=0)
    students_required = models.PositiveIntegerField(_("家访学生数量"), default=0)
    students_visited = models.PositiveIntegerField(_("已走访人数"), default=0)
    students_total = models.PositiveIntegerField(_("学生总数"), default=0)
    # Further indicators.
    visits = models.PositiveIntegerField(_("家访人次"), default=0)
    in_home_visits = models.PositiveIntegerField(_("入户家访人次"), default=0)
    focus_students = models.PositiveIntegerField(_("重点关注学生"), default=0)
    focus_visited = models.PositiveIntegerField(_("重点关注学生已走访"), default=0)
    special_students = models.PositiveIntegerField(_("特殊学生"), default=0)
    special_meeting_rule = models.PositiveIntegerField(_("入户家访满 2 次的特殊学生"), default=0)
    care_students = models.PositiveIntegerField(_("孤儿和事实无人抚养儿童"), default=0)
    open_feedback = models.PositiveIntegerField(_("待处理家长意见"), default=0)
    overdue_safety_reports = models.PositiveIntegerField(_("超时未报平安"), default=0)
    # Care-log compliance (关爱台账, DESIGN §7): asks (每日一问) and meetings (每周一见) due and
    # recorded over the period's school days up to yesterday (ledgers.care); special students with a
    # support plan (一生一策) of the school year.
    care_asks_due = models.PositiveIntegerField(_("每日一问应记"), default=0)
    care_asks_done = models.PositiveIntegerField(_("每日一问已记"), default=0)
    care_meetings_due = models.PositiveIntegerField(_("每周一见应见"), default=0)
    care_meetings_done = models.PositiveIntegerField(_("每周一见已见"), default=0)
    special_with_plan = models.PositiveIntegerField(_("已建一生一策的特殊学生"), default=0)
    # {category code: [students in force, of them visited in the period]}
    categories = models.JSONField(_("分类别"), default=dict)
    computed_at = models.DateTimeField(_("计算时间"))

    objects = UnitStatisticsQuerySet.as_manager()

    class Meta:
        verbose_name = _("统计数据")
        verbose_name_plural = _("统计数据")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "period", "level", "unit_id"], name="unique_unit_statistics"),
            models.CheckConstraint(condition=~Q(level="county") | Q(unit_id=0), name="county_unit_is_zero"),
        ]
        indexes = [
            models.Index(fields=["campaign", "period", "level", "zone"]),
            models.Index(fields=["campaign", "period", "level", "school"]),
            # The dashboards' cache key: the latest computed time of a period, read off the index's end.
            models.Index(fields=["campaign", "period", "computed_at"], name="unitstats_period_computed"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.period}"

    @property
    def participation_rate(self) -> Decimal | None:
        """走访率: teachers who visited over the unit's staff."""
        return rate(self.teachers_participating, self.staff_total)

    @property
    def coverage_rate(self) -> Decimal | None:
        """家访率: students visited over the students to visit."""
        return rate(self.students_visited, self.students_required)

    @property
    def focus_coverage_rate(self) -> Decimal | None:
        return rate(self.focus_visited, self.focus_students)

    @property
    def special_rule_rate(self) -> Decimal | None:
        return rate(self.special_meeting_rule, self.special_students)

    @property
    def care_ask_rate(self) -> Decimal | None:
        """每日一问完成率: asks recorded over asks due."""
        return rate(self.care_asks_done, self.care_asks_due)

    @property
    def care_meeting_rate(self) -> Decimal | None:
        """每周一见完成率: meetings recorded over meetings due."""
        return rate(self.care_meetings_done, self.care_meetings_due)

    @property
    def plan_rate(self) -> Decimal | None:
        """一生一策建档率: special students with a plan of the school year over special students."""
        return rate(self.special_with_plan, self.special_students)


class UnitStatisticsDay(models.Model):
    """One row a day per unit for the whole campaign: the trend of coverage and participation."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=10, choices=Level.choices)
    unit_id = models.PositiveIntegerField()
    day = models.DateField(_("日期"))
    staff_total = models.PositiveIntegerField(default=0)
    teachers_participating = models.PositiveIntegerField(default=0)
    students_required = models.PositiveIntegerField(default=0)
    students_visited = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("统计日数据")
        verbose_name_plural = _("统计日数据")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "level", "unit_id", "day"], name="unique_unit_statistics_day")
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.unit_id} {self.day}"

    @property
    def coverage_rate(self) -> Decimal | None:
        return rate(self.students_visited, self.students_required)

    @property
    def participation_rate(self) -> Decimal | None:
        return rate(self.teachers_participating, self.staff_total)


class StatisticsRun(models.Model):
    """A full recompute's progress: the figure sets are written in order and ``steps_done`` says
    how many are stored, so a run killed midway is finished by the next one from the first step not
    done (rows are upserted, never incremented, so redoing a step counts nothing twice).
    ``last_school_id`` is no longer used (runs were once chunked by school)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    last_school_id = models.PositiveIntegerField(default=0)
    schools_done = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("统计计算任务")
        verbose_name_plural = _("统计计算任务")
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(finished_at__isnull=True), name="one_unfinished_run_per_campaign"
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.started_at:%Y-%m-%d %H:%M}"


class SchoolStatisticsCheck(models.Model):
    """When a school's rows were last computed, whether or not a figure changed (a row whose figures
    did not change is not rewritten, so its ``computed_at`` says when its figures last changed).
    One narrow row per campaign and school, rewritten by every computation of the school."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField(_("计算时间"))

    class Meta:
        verbose_name = _("学校统计计算时间")
        verbose_name_plural = _("学校统计计算时间")
        constraints = [models.UniqueConstraint(fields=["campaign", "school"], name="unique_school_statistics_check")]

    def __str__(self) -> str:
        return f"{self.school_id} {self.computed_at:%Y-%m-%d %H:%M}"


class TeacherStatisticsQuerySet(models.QuerySet):
    def visible_to(self, user) -> "TeacherStatisticsQuerySet":
        """Teacher assessment (年度考核、师德考核) is the school's: its admin, and the bureau roles."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.ZONE_ADMIN and user.zone_id:
            return self.filter(school__zone_id=user.zone_id)
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return self.filter(school_id=user.school_id)
        return self.none()


class TeacherStatistics(models.Model):
    """Per member of staff, campaign and period: the figures of the teacher assessment."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(_("统计期间"), max_length=20)
    teacher = models.ForeignKey("schools.User", verbose_name=_("教师"), on_delete=models.CASCADE, related_name="+")
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.CASCADE, related_name="+")
    # Active students of the classes the teacher heads or teaches.
    students_assigned = models.PositiveIntegerField(_("任教学生数"), default=0)
    # Of them, those with a submitted visit in the period that the teacher led or joined.
    students_visited = models.PositiveIntegerField(_("已走访学生数"), default=0)
    # Submitted visits the teacher led or joined, and of them in-home.
    visits = models.PositiveIntegerField(_("家访人次"), default=0)
    in_home_visits = models.PositiveIntegerField(_("入户家访人次"), default=0)
    # Records the teacher led: submitted (complete) and still in draft.
    records_complete = models.PositiveIntegerField(_("已提交记录"), default=0)
    records_draft = models.PositiveIntegerField(_("草稿"), default=0)
    computed_at = models.DateTimeField(_("计算时间"))

    objects = TeacherStatisticsQuerySet.as_manager()

    class Meta:
        verbose_name = _("教师家访统计")
        verbose_name_plural = _("教师家访统计")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "period", "teacher"], name="unique_teacher_statistics")
        ]
        indexes = [models.Index(fields=["campaign", "period", "school"])]

    def __str__(self) -> str:
        return f"{self.teacher_id} {self.period}"

    @property
    def coverage_rate(self) -> Decimal | None:
        return rate(self.students_visited, self.students_assigned)


class LedgerExportJobQuerySet(models.QuerySet):
    def visible_to(self, user) -> "LedgerExportJobQuerySet":
        """An export job is its requester's own: nobody else sees its progress or its file."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(user=user)


class LedgerExportJob(models.Model):
    """A large ledger export (a whole zone or the county) written by a Celery task: progress while
    it runs, then a file kept for ``EXPORT_FILE_LIFETIME`` (a day) and removed after."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("正在生成")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")

    class Kind(models.TextChoices):
        WORK = "work", _("工作台账")
        FEEDBACK = "feedback", _("问题反馈台账")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey("schools.User", verbose_name=_("导出人"), on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("台账"), max_length=10, choices=Kind.choices)
    level = models.CharField(_("范围"), max_length=10, choices=Level.choices)
    unit_id = models.PositiveIntegerField(_("单位"))  # zone or school id; 0 for the county
    unit_name = models.CharField(_("单位名称"), max_length=100)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    total_rows = models.PositiveIntegerField(_("总行数"), default=0)
    done_rows = models.PositiveIntegerField(_("已写行数"), default=0)
    file_name = models.CharField(_("文件名"), max_length=200, blank=True)
    error = models.CharField(_("错误信息"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("提交时间"), default=timezone.now)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    expires_at = models.DateTimeField(_("文件过期时间"), null=True, blank=True)

    objects = LedgerExportJobQuerySet.as_manager()

    class Meta:
        verbose_name = _("台账导出任务")
        verbose_name_plural = _("台账导出任务")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.unit_name}"

    @property
    def path(self):
        from django.conf import settings

        return settings.PRIVATE_FILES_ROOT / "exports" / f"{self.public_id}.xlsx"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, round(100 * self.done_rows / self.total_rows))

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


# The special-student ledgers' records live in their own module; imported here so Django finds them.
from ledgers.care_models import *  # noqa: E402, F403
