"""Reads for the organisation pages. Each returns a fixed number of queries, whatever the size."""

from dataclasses import dataclass

from django.db.models import Case, Count, IntegerField, Prefetch, Q, Value, When
from django.utils import timezone

from schools.models import Campaign, Phase, Role, School, SchoolClass, SchoolYear, TeachingAssignment, User


@dataclass
class SchoolRow:
    school: School
    assigned: bool
    classes: int
    students: int
    staff: int


def schools_for_user(user: User) -> list[SchoolRow]:
    """The schools a user may see with their sizes; an inspector's assigned schools (包联) first."""
    schools = School.objects.visible_to(user).select_related("zone")
    if user.role == Role.INSPECTOR:
        schools = schools.annotate(
            assigned=Case(
                When(inspectors__inspector=user, then=Value(1)), default=Value(0), output_field=IntegerField()
            )
        ).order_by("-assigned", "zone__code", "code")
    schools = list(schools)
    ids = [school.pk for school in schools]
    year = SchoolYear.current()
    classes = dict(
        SchoolClass.objects.filter(school_id__in=ids, school_year=year)
        .values("school")
        .annotate(n=Count("id"))
        .values_list("school", "n")
    )
    students = dict(
        School.objects.filter(pk__in=ids)
        .annotate(n=Count("students", filter=Q(students__status="active")))
        .values_list("pk", "n")
    )
    staff = dict(
        School.objects.filter(pk__in=ids)
        .annotate(n=Count("staff", filter=Q(staff__is_active=True)))
        .values_list("pk", "n")
    )
    return [
        SchoolRow(
            school=school,
            assigned=bool(getattr(school, "assigned", 0)),
            classes=classes.get(school.pk, 0),
            students=students.get(school.pk, 0),
            staff=staff.get(school.pk, 0),
        )
        for school in schools
    ]


def classes_of_school(school: School) -> list[SchoolClass]:
    """The school's classes of the current school year, with head teacher and active student count."""
    return list(
        SchoolClass.objects.filter(school=school, school_year=SchoolYear.current())
        .select_related("head_teacher")
        .annotate(student_count=Count("students", filter=Q(students__status="active")))
        .order_by("grade", "number")
    )


def staff_of_school(school: School) -> list[User]:
    """Staff with the classes they head and teach this school year (two prefetches in all)."""
    year = SchoolYear.current()
    return list(
        User.objects.filter(school=school, is_active=True)
        .prefetch_related(
            Prefetch("headed_classes", queryset=SchoolClass.objects.filter(school_year=year), to_attr="year_headed"),
            Prefetch(
                "assignments",
                queryset=TeachingAssignment.objects.filter(school_class__school_year=year).select_related(
                    "school_class"
                ),
                to_attr="year_assignments",
            ),
        )
        .order_by("role", "real_name")
    )


def current_campaign_phase() -> tuple[Campaign | None, Phase | None]:
    campaign = Campaign.current()
    if campaign is None:
        return None, None
    phases = list(campaign.phases.all())
    today = timezone.localdate()
    phase = next((p for p in phases if p.start <= today <= p.end), None)
    return campaign, phase
