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
    # The key the form was rendered with (visits.services.visit_submit's ``submission_key``): a
    # repeat of the same submission — a double tap, a resend — finds this record instead of
    # making a second one. Empty for records made without a form key.
    submission_key = models.UUIDField(_("提交键"), null=True, blank=True, unique=True, editable=False)

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

    def can_edit(self, user) -> bool:
        """The one rule for who may change a record (DESIGN §2, §4): its lead teacher, and the
        admins of its school. Reach the visit through ``visible_to`` first; this narrows further."""
        if not user.is_authenticated or not user.is_active:
            return False
        return self.lead_teacher_id == user.pk or (user.role == Role.SCHOOL_ADMIN and self.school_id == user.school_id)

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


class FeedbackCategory(models.TextChoices):
    """The feedback ledger's problem categories (问题反馈台账, DESIGN §6)."""

    TEACHING = "teaching", _("教学")
    MANAGEMENT = "management", _("管理")
    SAFETY = "safety", _("安全")
    FEES = "fees", _("收费")
    MEALS = "meals", _("饮食")
    TRANSPORT = "transport", _("交通")
    MENTAL_HEALTH = "mental_health", _("心理健康")
    PARENTING = "parenting", _("家庭教育")
    OTHER = "other", _("其他")


class FeedbackNature(models.TextChoices):
    COMMON = "common", _("共性")
    INDIVIDUAL = "individual", _("个性")


class FeedbackStatus(models.TextChoices):
    """An item's status. Open (未办结) are 待处理, 处理中 and 上报教育局; 现场答复 and 已解决 are done;
    已撤回 is an item the teacher withdrew from the visit with a reason, kept in the ledger."""

    ON_SITE = "on_site", _("现场答复")
    OPEN = "open", _("待处理")
    IN_PROGRESS = "in_progress", _("处理中")
    RESOLVED = "resolved", _("已解决")
    ESCALATED = "escalated", _("上报教育局")
    WITHDRAWN = "withdrawn", _("已撤回")


OPEN_FEEDBACK_STATUSES = (FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS, FeedbackStatus.ESCALATED)
# Ageing flags of an open item, in days since the visit that raised it (issue 11).
FEEDBACK_AGE_WARNING_DAYS = 7
FEEDBACK_AGE_OVERDUE_DAYS = 30


class ReplyMethod(models.TextChoices):
    IN_PERSON = "in_person", _("当面答复")
    PHONE = "phone", _("电话答复")
    WECHAT = "wechat", _("微信答复")
    WRITTEN = "written", _("书面答复")
    MEETING = "meeting", _("家长会答复")


class SuggestionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SuggestionQuerySet":
        """The feedback ledger (DESIGN §2, §6): a school admin the school's items, a zone admin the
        zone's, inspectors and the bureau every school's. Only items of submitted visits are in the
        ledger; teachers read theirs on the visit record, not here."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        items = self.filter(visit_submitted=True)
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return items.filter(school_id=user.school_id)
        if user.role in BUREAU_ROLES:
            return items
        if user.role == Role.ZONE_ADMIN and user.zone_id:
            return items.filter(school__zone_id=user.zone_id)
        return self.none()

    def open(self) -> "SuggestionQuerySet":
        return self.filter(status__in=OPEN_FEEDBACK_STATUSES)


class Suggestion(models.Model):
    """One opinion or suggestion of the family (家校沟通表), replied on site or passed to the school:
    an item of the feedback ledger (问题反馈台账, DESIGN §6). An item keeps its identity for ever:
    correcting the visit updates it in place; one the school is handling is withdrawn, never deleted.
    ``text`` is the family's words: the school's triage never changes it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    visit = models.ForeignKey(Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="suggestions")
    school = models.ForeignKey(
        School, verbose_name=_("学校"), null=True, on_delete=models.PROTECT, related_name="feedback_items"
    )
    text = models.CharField(_("家长意见建议"), max_length=500)
    reply = models.CharField(_("现场答复"), max_length=500, blank=True)
    to_school = models.BooleanField(_("提交学校处理"), default=False)
    raised_on = models.DateField(_("提出日期"), null=True, blank=True)
    # A copy of "the visit is submitted", kept by the visit service: the ledger and the statistics
    # read items without joining the visit table (DESIGN §7: no figure scans the visits).
    visit_submitted = models.BooleanField(_("记录已提交"), default=False, editable=False)
    status = models.CharField(_("状态"), max_length=12, choices=FeedbackStatus.choices, default=FeedbackStatus.ON_SITE)
    category = models.CharField(_("问题类别"), max_length=16, choices=FeedbackCategory.choices, blank=True)
    nature = models.CharField(_("问题性质"), max_length=12, choices=FeedbackNature.choices, blank=True)
    handler = models.ForeignKey(
        User, verbose_name=_("经办人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    issue = models.ForeignKey(
        "FeedbackIssue",
        verbose_name=_("共性问题"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="items",
    )
    family_reply = models.CharField(_("答复家长"), max_length=1000, blank=True)
    reply_method = models.CharField(_("答复方式"), max_length=12, choices=ReplyMethod.choices, blank=True)
    replied_on = models.DateField(_("答复日期"), null=True, blank=True)
    resolved_on = models.DateField(_("办结日期"), null=True, blank=True)
    escalation_note = models.CharField(_("上报说明"), max_length=1000, blank=True)
    escalated_at = models.DateTimeField(_("上报时间"), null=True, blank=True)
    bureau_reply = models.CharField(_("教育局答复"), max_length=1000, blank=True)
    bureau_replied_by = models.ForeignKey(
        User, verbose_name=_("教育局答复人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    bureau_replied_at = models.DateTimeField(_("教育局答复时间"), null=True, blank=True)
    withdrawn_reason = models.CharField(_("撤回原因"), max_length=300, blank=True)
    withdrawn_at = models.DateTimeField(_("撤回时间"), null=True, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    objects = SuggestionQuerySet.as_manager()

    class Meta:
        verbose_name = _("家长意见建议")
        verbose_name_plural = _("家长意见建议")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["school", "status", "raised_on"]),
            models.Index(fields=["status", "category"]),
            # The statistics sheet's feedback table (category × status, in a period) counts the
            # ledger's items from this index alone, without reading the table.
            models.Index(
                fields=["category", "status", "raised_on"],
                condition=models.Q(visit_submitted=True),
                name="visits_sugg_ledger_count_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:30]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_FEEDBACK_STATUSES

    @property
    def is_handled(self) -> bool:
        """The school has started on it: triaged, grouped, replied, escalated or closed. Such an
        item cannot be removed from its visit, only withdrawn with a reason."""
        return bool(
            self.status not in (FeedbackStatus.ON_SITE, FeedbackStatus.OPEN)
            or self.handler_id
            or self.issue_id
            or self.category
            or self.family_reply
        )

    def age_days(self, today: datetime.date | None = None) -> int | None:
        if self.raised_on is None:
            return None
        return ((today or timezone.localdate()) - self.raised_on).days

    @property
    def age_flag(self) -> str:
        """「超 30 天」, 「超 7 天」 or "" for an open item (done items do not age)."""
        age = self.age_days()
        if not self.is_open or age is None:
            return ""
        if age > FEEDBACK_AGE_OVERDUE_DAYS:
            return f"超{FEEDBACK_AGE_OVERDUE_DAYS}天"
        if age > FEEDBACK_AGE_WARNING_DAYS:
            return f"超{FEEDBACK_AGE_WARNING_DAYS}天"
        return ""


class FeedbackIssueQuerySet(models.QuerySet):
    def visible_to(self, user) -> "FeedbackIssueQuerySet":
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role == Role.SCHOOL_ADMIN and user.school_id:
            return self.filter(school_id=user.school_id)
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.ZONE_ADMIN and user.zone_id:
            return self.filter(school__zone_id=user.zone_id)
        return self.none()


class FeedbackIssue(models.Model):
    """A common problem (共性问题) of one school, e.g. 「校门口接送拥堵」: items are grouped under it and
    resolved once, together."""

    class Status(models.TextChoices):
        OPEN = "open", _("处理中")
        RESOLVED = "resolved", _("已解决")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="feedback_issues")
    title = models.CharField(_("问题"), max_length=100)
    category = models.CharField(_("问题类别"), max_length=16, choices=FeedbackCategory.choices)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.OPEN)
    handler = models.ForeignKey(
        User, verbose_name=_("经办人"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(_("处理结果（答复家长）"), max_length=1000, blank=True)
    reply_method = models.CharField(_("答复方式"), max_length=12, choices=ReplyMethod.choices, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("建立时间"), default=timezone.now)
    resolved_on = models.DateField(_("解决日期"), null=True, blank=True)

    objects = FeedbackIssueQuerySet.as_manager()

    class Meta:
        verbose_name = _("共性问题")
        verbose_name_plural = _("共性问题")
        ordering = ["status", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["school", "title"], name="unique_feedback_issue_title")]

    def __str__(self) -> str:
        return self.title


class FeedbackChange(models.Model):
    """One change to a feedback item: who, when, what (field label → [before, after]) and a note."""

    item = models.ForeignKey(Suggestion, verbose_name=_("意见"), on_delete=models.CASCADE, related_name="changes")
    changed_by = models.ForeignKey(User, verbose_name=_("操作人"), null=True, on_delete=models.SET_NULL)
    changed_at = models.DateTimeField(_("时间"), default=timezone.now)
    action = models.CharField(_("操作"), max_length=20)
    changes = models.JSONField(_("修改内容"), default=dict)

    class Meta:
        verbose_name = _("意见处理记录")
        verbose_name_plural = _("意见处理记录")
        ordering = ["changed_at", "id"]

    def __str__(self) -> str:
        return f"{self.changed_at:%Y-%m-%d %H:%M} {self.action}"


class AttachmentQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AttachmentQuerySet":
        """Photos of a home are among the most sensitive things kept (DESIGN §8): only the school's
        people who may see the record (its teachers, the school admin) see them; the county's roles
        read the record without its attachments."""
        if not user.is_authenticated or user.role not in SCHOOL_ROLES:
            return self.none()
        return self.filter(visit__in=Visit.objects.visible_to(user))


class PrivateFile(models.Model):
    """A photo or scan checked and re-encoded by ``visits.attachments.attachment_prepare``, stored
    under ``PRIVATE_FILES_ROOT/<FOLDER>/`` (outside every URL space) and served only through a
    scope-checked view (DESIGN §8). Visit attachments and rectification files are both kinds."""

    FOLDER = "attachments"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    original_name = models.CharField(_("文件名"), max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField(_("大小"))

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.original_name

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}.get(self.content_type, "bin")

    @property
    def path(self):
        return settings.PRIVATE_FILES_ROOT / self.FOLDER / f"{self.public_id}.{self.extension}"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class Attachment(PrivateFile):
    """A photo or scan of a visit record."""

    visit = models.ForeignKey(Visit, verbose_name=_("家访记录"), on_delete=models.CASCADE, related_name="attachments")
    uploaded_by = models.ForeignKey(User, verbose_name=_("上传人"), null=True, on_delete=models.SET_NULL)
    uploaded_at = models.DateTimeField(_("上传时间"), auto_now_add=True)

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("附件")
        verbose_name_plural = _("附件")
        ordering = ["uploaded_at"]


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
    # As Visit.submission_key: the key the form was rendered with; a repeat finds this report.
    submission_key = models.UUIDField(_("提交键"), null=True, blank=True, unique=True, editable=False)

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
