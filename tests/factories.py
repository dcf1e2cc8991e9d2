"""factory_boy factories for the organisation and students."""

import datetime

import factory
from django.utils import timezone

from schools.models import (
    Campaign,
    Grade,
    InspectorAssignment,
    Phase,
    Role,
    School,
    SchoolClass,
    SchoolYear,
    TeachingAssignment,
    User,
    Zone,
)
from students.models import Guardian, Student, StudentCategory

PASSWORD = "correct-horse-battery"


class ZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Zone
        django_get_or_create = ("code",)

    name = factory.Sequence(lambda n: f"第{n + 1}片区")
    code = factory.Sequence(lambda n: f"Z{n + 1:02d}")


class SchoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = School

    zone = factory.SubFactory(ZoneFactory)
    name = factory.Sequence(lambda n: f"示例第{n + 1}小学")
    code = factory.Sequence(lambda n: f"S{n + 1:04d}")
    kind = School.Kind.PRIMARY


class SchoolYearFactory(factory.django.DjangoModelFactory):
    """The school year containing today, so that imports and pages find a current year."""

    class Meta:
        model = SchoolYear
        django_get_or_create = ("name",)

    name = factory.LazyFunction(lambda: _school_year_bounds()[0])
    start = factory.LazyFunction(lambda: _school_year_bounds()[1])
    end = factory.LazyFunction(lambda: _school_year_bounds()[2])


def _school_year_bounds() -> tuple[str, datetime.date, datetime.date]:
    today = timezone.localdate()
    first = today.year if today.month >= 8 else today.year - 1
    return f"{first}-{first + 1}", datetime.date(first, 8, 1), datetime.date(first + 1, 7, 31)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"1380000{n:04d}")
    real_name = factory.Sequence(lambda n: f"教师{n}")
    role = Role.TEACHER
    school = factory.SubFactory(SchoolFactory)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class SchoolClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SchoolClass

    school = factory.SubFactory(SchoolFactory)
    school_year = factory.SubFactory(SchoolYearFactory)
    grade = Grade.G3
    number = factory.Sequence(lambda n: n + 1)


class TeachingAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TeachingAssignment

    teacher = factory.SubFactory(UserFactory)
    school_class = factory.SubFactory(SchoolClassFactory)
    subject = "语文"


class InspectorAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InspectorAssignment

    inspector = factory.SubFactory(UserFactory, role=Role.INSPECTOR, school=None)
    school = factory.SubFactory(SchoolFactory)


class StudentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Student

    school_class = factory.SubFactory(SchoolClassFactory)
    school = factory.SelfAttribute("school_class.school")
    name = factory.Sequence(lambda n: f"学生{n}")
    gender = Student.Gender.MALE
    student_number = factory.Sequence(lambda n: f"G{n:018d}")
    address = "示例县城关镇幸福路 1 号"


class GuardianFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Guardian

    student = factory.SubFactory(StudentFactory)
    name = "王芳"
    relation = "母亲"
    phone = "13912345678"


class StudentCategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StudentCategory

    student = factory.SubFactory(StudentFactory)
    category = "left_behind"
    start = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=30))


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        django_get_or_create = ("year",)

    year = factory.LazyFunction(lambda: timezone.localdate().year)
    name = factory.LazyAttribute(lambda o: f"{o.year}年“万名教师大家访”活动")


class PhaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Phase

    campaign = factory.SubFactory(CampaignFactory)
    kind = Phase.Kind.FULL_ROUND
    start = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=10))
    end = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=10))
