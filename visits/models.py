"""Visit records (《大家访活动教师记录表》, DESIGN §4), safety reports (家访安全报告, §5) and the
in-app notifications they raise."""

import datetime
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from schools.models import BUREAU_ROLES, SCHOOL_ROLES, Phase, Role, School, SchoolClass, User
from students.models import Student


class Method(models.TextChoices):
    IN_HOME = "in_home", _("上门家访")
    NEARBY = "nearby", _("就近家访")
    PHONE = "phone", _("电话访")
    APPOINTMENT = "appointment", _("约访")
    QQ = "qq", _("QQ访")
    WECHAT = "wechat", _("微信访")


class Content(models.TextChoices):
    """The record form's content checklist, in its order."""

    LEARNING = "learning", _("学情反馈")
    FAMILY = "family", _("家庭基本情况")
    AT_HOME = "at_home", _("在家表现")
    MEASURES = "measures", _("共商措施")
    POLICY = "policy", _("惠民政策与校纪校规宣传")
    SCHOOL = "school", _("办学理念与成果介绍")
    PARENTING = "parenting", _("家庭教育指导")
    LAW = "law", _("法律宣传（未成年人保护法、预防未成年人犯罪法、未成年人学校保护规定）")
    BULLYING = "bullying", _("防欺凌宣传")
    SAFETY = "safety", _("安全教育")


class VisitQuerySet(models.QuerySet):
    def visible_to(self, user) -> "VisitQuerySet":
        """Teachers see the visits they led or joined and those of their classes' students;
        a school admin the school's; the county roles submitted visits in their scope."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role == Role.TEACHER:
            own_students = Student.objects.filter(school_class__in=SchoolClass.objects.visible_to(user))
            return self.filter(
                Q(lead_teacher=user) | Q(companions=user) | Q(students__in=own_students, status=Visit.Status.SUBMITTED)
            ).distinct()
        if user.role == Role.SCHOOL_ADMIN:
            return self.filter(school_id=user.school_id)
        submitted = self.filter(status=Visit.Status.SUBMITTED)
        if user.role in BUREAU_ROLES:
            return submitted
        return submitted.filter(school__in=School.objects.visible_to(user))

    def submitted(self) -> "VisitQuerySet":
        return self.filter(status=Visit.Status.SUBMITTED)


class Visit(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("草稿")
        SUBMITTED = "submitted", _("已提交")
        # Sent back by the school's review (审核, DESIGN §6): counts as not submitted until resubmitted.
        RETURNED = "returned", _("已退回")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="visits")
    lead_teacher = models.ForeignKey(
        User, verbose_name=_("家访教师"), on_delete=models.PROTECT, related_name="led_visits"
    )
    companions = models.ManyToManyField(
        User, verbose_name=_("同行教师和学校领导"), blank=True, related_name="joined_visits"
    )
    students = models.ManyToManyField(Student, verbose_name=_("学生"), related_name="visits")
    visited_at = models.DateTimeField(_("家访时间"))
    phase = models.ForeignKey(
        Phase, verbose_name=_("阶段"), null=True, blank=True, on_delete=models.SET_NULL, related_name="visits"
    )
    method = models.CharField(_("家访方式"), max_length=12, choices=Method.choices)
    guardians_met = models.CharField(_("接待家长及关系"), max_length=200, blank=True)
    contents = models.JSONField(_("家访内容"), default=list, blank=True)
    situation = models.TextField(_("情况记录"), max_length=4000, blank=True)
    measures = models.TextField(_("商定措施（一生一策）"), max_length=2000, blank=True)
    consent_recorded = models.BooleanField(_("家长已知情同意"), default=False)
    integrity_declared = models.BooleanField(_("廉洁承诺：未接受家长吃请和礼品"), default=False)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    # Optimistic lock: an update names the version it was based on; a stale one is refused.
    version = models.PositiveIntegerField(default=1)
    safety_report = models.ForeignKey(
        "SafetyReport", verbose_name=_("报备"), null=True, blank=True, on_delete=models.SET_NULL, related_name="visits"
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    submitted_at = models.DateTimeField(_("提交时间"), null=True, blank=True)

    objects = VisitQuerySet.as_manager()

    class Meta:
        verbose_name = _("家访记录")
        verbose_name_plural = _("家访记录")
        ordering = ["-visited_at"]
        indexes = [
            models.Index(fields=["school", "status", "visited_at"]),
            models.Index(fields=["lead_teacher", "status"]),
            # The statistics' working set (ledgers.statistics): submitted visits by date with the few
            # columns it reads, so PostgreSQL reads it from the index, never the wide rows.
            models.Index(
                fields=["visited_at"],
                include=["school", "lead_teacher", "method"],
                condition=Q(status="submitted"),
                name="visit_submitted_by_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.visited_at:%Y-%m-%d} {self.get_method_display()}"

    @property
    def is_in_home(self) -> bool:
        return self.method == Method.IN_HOME

    @property
    def is_submitted(self) -> bool:
        return self.status == self.Status.SUBMITTED

    @property
    def is_returned(self) -> bool:
        return self.status == self.Status.RETURNED

    @property
    def is_filed(self) -> bool:
        """Submitted at least once (submitted now, or sent back by the review): its changes are kept."""
        return self.status in (self.Status.SUBMITTED, self.Status.RETURNED)

    def content_labels(self) -> list[str]:
        return [Content(code).label for code in Content.values if code in self.contents]


class Suggestion(models.Model):
    """One opinion or suggestion of the family (家校沟通表), replied on site or passed to the school."""

    visit = models.ForeignKey(Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="suggestions")
    text = models.CharField(_("家长意见建议"), max_length=500)
    reply = models.CharField(_("现场答复"), max_length=500, blank=True)
    to_school = models.BooleanField(_("提交学校处理"), default=False)

    class Meta:
        verbose_name = _("家长意见建议")
        verbose_name_plural = _("家长意见建议")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:30]


class AttachmentQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AttachmentQuerySet":
        """Photos of a home are among the most sensitive things kept (DESIGN §8): only the school's
        people who may see the record (its teachers, the school admin) see them; the county's roles
        read the record without its attachments."""
        if not user.is_authenticated or user.role not in SCHOOL_ROLES:
            return self.none()
        return self.filter(visit__in=Visit.objects.visible_to(user))


class Attachment(models.Model):
    """A photo or scan: stored outside every URL space, served only through a scope-checked view."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    visit = models.ForeignKey(Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="attachments")
    original_name = models.CharField(_("文件名"), max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField(_("大小"))
    uploaded_by = models.ForeignKey(User, verbose_name=_("上传人"), null=True, on_delete=models.SET_NULL)
    uploaded_at = models.DateTimeField(_("上传时间"), auto_now_add=True)

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("附件")
        verbose_name_plural = _("附件")
        ordering = ["uploaded_at"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}.get(self.content_type, "bin")

    @property
    def path(self):
        return settings.PRIVATE_FILES_ROOT / "attachments" / f"{self.public_id}.{self.extension}"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class Revision(models.Model):
    """A change to a submitted record: who, when, and each field's value before and after."""

    visit = models.ForeignKey(Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="revisions")
    changed_by = models.ForeignKey(User, verbose_name=_("修改人"), null=True, on_delete=models.SET_NULL)
    changed_at = models.DateTimeField(_("修改时间"), default=timezone.now)
    # {"field label": ["before", "after"], ...}
    changes = models.JSONField(_("修改内容"), default=dict)

    class Meta:
        verbose_name = _("修改记录")
        verbose_name_plural = _("修改记录")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.changed_at:%Y-%m-%d %H:%M} {self.changed_by}"


class SafetyReportQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SafetyReportQuerySet":
        """A teacher sees the reports they filed or go along on; a school admin the school's."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role == Role.TEACHER:
            return self.filter(Q(teacher=user) | Q(companions=user)).distinct()
        if user.role == Role.SCHOOL_ADMIN:
            return self.filter(school_id=user.school_id)
        if user.role in BUREAU_ROLES:
            return self.all()
        return self.filter(school__in=School.objects.visible_to(user))


class SafetyReport(models.Model):
    """家访报备: filed before leaving, checked in (平安返回) after; overdue past the planned end and
    the school's grace period."""

    class Status(models.TextChoices):
        OUT = "out", _("外出家访中")
        RETURNED = "returned", _("已平安返回")
        OVERDUE = "overdue", _("超时未报平安")
        CLOSED = "closed", _("已处理关闭")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="safety_reports")
    teacher = models.ForeignKey(
        User, verbose_name=_("报备教师"), on_delete=models.PROTECT, related_name="safety_reports"
    )
    companions = models.ManyToManyField(
        User, verbose_name=_("同行人员"), blank=True, related_name="joined_safety_reports"
    )
    students = models.ManyToManyField(Student, verbose_name=_("家访学生"), related_name="safety_reports")
    address = models.CharField(_("家访地址"), max_length=200)
    planned_start = models.DateTimeField(_("计划出发时间"))
    expected_minutes = models.PositiveSmallIntegerField(_("预计用时（分钟）"))
    phone = models.CharField(_("联系电话"), max_length=20)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.OUT)
    due_at = models.DateTimeField(_("应报平安时间"))
    checked_in_at = models.DateTimeField(_("平安返回时间"), null=True, blank=True)
    overdue_notified_at = models.DateTimeField(_("超时通知时间"), null=True, blank=True)
    closed_by = models.ForeignKey(
        User, verbose_name=_("关闭人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(_("关闭时间"), null=True, blank=True)
    close_reason = models.CharField(_("关闭原因"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("报备时间"), auto_now_add=True)

    objects = SafetyReportQuerySet.as_manager()

    class Meta:
        verbose_name = _("家访安全报备")
        verbose_name_plural = _("家访安全报备")
        ordering = ["-planned_start"]
        indexes = [models.Index(fields=["status", "due_at"]), models.Index(fields=["school", "status"])]

    def __str__(self) -> str:
        return f"{self.teacher} {self.planned_start:%m-%d %H:%M}"

    @property
    def planned_end(self):
        return self.planned_start + datetime.timedelta(minutes=self.expected_minutes)

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.OUT, self.Status.OVERDUE)


class Notification(models.Model):
    """An in-app message to one user (the default notifier writes these)."""

    user = models.ForeignKey(User, verbose_name=_("接收人"), on_delete=models.CASCADE, related_name="notifications")
    title = models.CharField(_("标题"), max_length=100)
    body = models.CharField(_("内容"), max_length=500)
    link = models.CharField(_("链接"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("时间"), default=timezone.now)
    read_at = models.DateTimeField(_("已读时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("通知")
        verbose_name_plural = _("通知")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self) -> str:
        return self.title


class GroupRobot(models.Model):
    """A school's own group robot (its work group on WeCom or DingTalk). Without one, a school's
    messages go to the county-wide robot (``settings.NOTIFY_WEBHOOK_URL``)."""

    class Kind(models.TextChoices):
        WECOM = "wecom", _("企业微信群机器人")
        DINGTALK = "dingtalk", _("钉钉群机器人")

    school = models.OneToOneField(School, verbose_name=_("学校"), on_delete=models.CASCADE, related_name="robot")
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices, default=Kind.WECOM)
    url = models.URLField(_("Webhook 地址"), max_length=300)
    # DingTalk's 加签 secret (SEC...); WeCom robots have none.
    secret = models.CharField(_("加签密钥"), max_length=100, blank=True)
    enabled = models.BooleanField(_("启用"), default=True)
    # Set when the robot keeps refusing: shown to the school admin; cleared by a successful post.
    failing_since = models.DateTimeField(_("发送失败起始时间"), null=True, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("学校群机器人")
        verbose_name_plural = _("学校群机器人")

    def __str__(self) -> str:
        return f"{self.school} · {self.get_kind_display()}"


class WebhookMessage(models.Model):
    """A message for the group robot, kept until the robot has taken it: a broker or a robot that is
    down delays it, never loses it. Delivery is at least once (a retry after a lost answer can post
    twice); the in-app ``Notification`` stays the record."""

    content = models.TextField(_("内容"))
    created_at = models.DateTimeField(_("时间"), default=timezone.now)
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=0)
    last_error = models.CharField(_("最近错误"), max_length=300, blank=True)
    # The school whose robot takes it; empty: the county-wide robot.
    school = models.ForeignKey(School, verbose_name=_("学校"), null=True, blank=True, on_delete=models.CASCADE)
    # Set when delivery was abandoned (too many failures): the message is no longer retried.
    given_up_at = models.DateTimeField(_("放弃时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("群机器人消息")
        verbose_name_plural = _("群机器人消息")
        ordering = ["created_at"]
        indexes = [models.Index(fields=["sent_at", "created_at"])]

    def __str__(self) -> str:
        return self.content[:30]
