"""Students, their guardians and their categories (DESIGN §3)."""

import datetime
import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from schools.models import BUREAU_ROLES, Role, School, SchoolClass


class Category(models.TextChoices):
    ECONOMIC_HARDSHIP = "economic_hardship", _("经济困难家庭")
    LEARNING_DIFFICULTY = "learning_difficulty", _("学习困难")
    MAJOR_CHANGE = "major_change", _("思想和学业上有重大变化")
    LEFT_BEHIND = "left_behind", _("留守儿童（含单亲子女）")
    MIGRANT = "migrant", _("进城务工随迁子女")
    DISABILITY = "disability", _("残疾学生")
    PSYCHOLOGICAL = "psychological", _("心理状况异常")
    FAMILY_CRISIS = "family_crisis", _("突发重大变故")
    DROPOUT_RISK = "dropout_risk", _("有辍学倾向")
    ORPHAN = "orphan", _("孤儿")
    UNSUPPORTED = "unsupported", _("事实无人抚养儿童")


# The six focus family types (重点关注六类家庭), counted separately in the statistics.
FOCUS_CATEGORIES = (
    Category.ECONOMIC_HARDSHIP,
    Category.LEARNING_DIFFICULTY,
    Category.MAJOR_CHANGE,
    Category.LEFT_BEHIND,
    Category.MIGRANT,
    Category.DISABILITY,
)
# Special students (特殊学生群体): at least two in-home visits a school year and a support plan.
SPECIAL_CATEGORIES = (
    Category.LEARNING_DIFFICULTY,
    Category.PSYCHOLOGICAL,
    Category.MAJOR_CHANGE,
    Category.LEFT_BEHIND,
    Category.MIGRANT,
    Category.DISABILITY,
    Category.FAMILY_CRISIS,
    Category.DROPOUT_RISK,
)
# A special student needs this many in-home visits (入户家访) each school year (DESIGN §3).
IN_HOME_VISITS_REQUIRED = 2
# Who the revisit round (第二轮重点回访) must reach: the focus and the special students.
REVISIT_CATEGORIES = tuple(dict.fromkeys((*FOCUS_CATEGORIES, *SPECIAL_CATEGORIES)))
# The care mechanism (关爱机制): 每日一问 by the head teacher, 每周一见 by the principal.
CARE_CATEGORIES = (Category.ORPHAN, Category.UNSUPPORTED)
# Shown only to the people who work with the student (DESIGN §8).
SENSITIVE_CATEGORIES = (
    Category.DISABILITY,
    Category.PSYCHOLOGICAL,
    Category.FAMILY_CRISIS,
    Category.ORPHAN,
    Category.UNSUPPORTED,
)


class StudentQuerySet(models.QuerySet):
    def visible_to(self, user) -> "StudentQuerySet":
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.role in BUREAU_ROLES:
            return self.all()
        if user.role == Role.TEACHER:
            return self.filter(school_class__in=SchoolClass.objects.visible_to(user))
        return self.filter(school__in=School.objects.visible_to(user))

    def active(self) -> "StudentQuerySet":
        return self.filter(status=Student.Status.ACTIVE)


class Student(models.Model):
    class Gender(models.TextChoices):
        MALE = "M", _("男")
        FEMALE = "F", _("女")

    class Status(models.TextChoices):
        ACTIVE = "active", _("在读")
        LEFT = "left", _("已离校")

    # Opaque identifier for URLs: never 学籍号 or 身份证件号.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    school = models.ForeignKey(School, verbose_name=_("学校"), on_delete=models.PROTECT, related_name="students")
    school_class = models.ForeignKey(
        SchoolClass, verbose_name=_("班级"), null=True, blank=True, on_delete=models.PROTECT, related_name="students"
    )
    name = models.CharField(_("姓名"), max_length=50)
    gender = models.CharField(_("性别"), max_length=1, choices=Gender.choices)
    student_number = models.CharField(_("学籍号"), max_length=32, unique=True)
    id_number = models.CharField(_("身份证件号"), max_length=18, blank=True)
    birth_date = models.DateField(_("出生日期"), null=True, blank=True)
    address = models.CharField(_("家庭住址"), max_length=200, blank=True)
    disability_type = models.CharField(_("残疾类型"), max_length=30, blank=True)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    objects = StudentQuerySet.as_manager()

    class Meta:
        verbose_name = _("学生")
        verbose_name_plural = _("学生")
        ordering = ["school_class__grade", "school_class__number", "name"]
        indexes = [models.Index(fields=["school", "status"])]

    def __str__(self) -> str:
        return self.name

    def categories_on(self, day: datetime.date | None = None) -> list[str]:
        """Category codes in force on ``day``; uses prefetched categories when there are any."""
        day = day or timezone.localdate()
        return sorted({c.category for c in self.categories.all() if c.in_force_on(day)})

    @property
    def is_special(self) -> bool:
        return any(code in SPECIAL_CATEGORIES for code in self.categories_on())

    @property
    def is_focus(self) -> bool:
        return any(code in FOCUS_CATEGORIES for code in self.categories_on())


class Guardian(models.Model):
    student = models.ForeignKey(Student, verbose_name=_("学生"), on_delete=models.CASCADE, related_name="guardians")
    name = models.CharField(_("监护人姓名"), max_length=50)
    relation = models.CharField(_("关系"), max_length=20, blank=True)
    phone = models.CharField(_("联系电话"), max_length=20, blank=True)

    class Meta:
        verbose_name = _("监护人")
        verbose_name_plural = _("监护人")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class StudentCategoryQuerySet(models.QuerySet):
    def in_force_on(self, day: datetime.date) -> "StudentCategoryQuerySet":
        return self.filter(Q(start__lte=day), Q(end__isnull=True) | Q(end__gte=day))


class StudentCategory(models.Model):
    """A category a student belongs to from ``start`` until ``end`` (open while ``end`` is empty)."""

    class Source(models.TextChoices):
        ROSTER = "roster", _("名册导入")
        MANUAL = "manual", _("手工登记")

    student = models.ForeignKey(Student, verbose_name=_("学生"), on_delete=models.CASCADE, related_name="categories")
    category = models.CharField(_("类别"), max_length=24, choices=Category.choices)
    start = models.DateField(_("开始日期"))
    end = models.DateField(_("结束日期"), null=True, blank=True)
    source = models.CharField(_("来源"), max_length=10, choices=Source.choices, default=Source.MANUAL)
    note = models.CharField(_("备注"), max_length=200, blank=True)

    objects = StudentCategoryQuerySet.as_manager()

    class Meta:
        verbose_name = _("学生类别")
        verbose_name_plural = _("学生类别")
        ordering = ["student", "category", "start"]
        indexes = [models.Index(fields=["category", "start", "end"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=models.F("start")), name="category_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} · {self.get_category_display()}"

    def in_force_on(self, day: datetime.date) -> bool:
        return self.start <= day and (self.end is None or self.end >= day)
