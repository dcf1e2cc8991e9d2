"""Reads of students for pages; each a fixed number of queries whatever the number of rows."""

from django.db.models import Prefetch, Q, QuerySet

from schools.models import SchoolClass, SchoolYear, User
from students.models import Student


def students_with_categories(queryset: QuerySet) -> QuerySet:
    return queryset.select_related("school_class").prefetch_related("categories")


def teacher_classes(user: User) -> list[SchoolClass]:
    """The teacher's classes this school year, each with its active students and their categories."""
    students = students_with_categories(Student.objects.active()).order_by("name")
    return list(
        SchoolClass.objects.visible_to(user)
        .filter(school_year=SchoolYear.current())
        .select_related("school", "head_teacher")
        .prefetch_related(Prefetch("students", queryset=students, to_attr="active_students"))
        .order_by("grade", "number")
    )


def student_search(user: User, *, query: str = "", class_id: str = "") -> QuerySet:
    students = Student.objects.visible_to(user).active()
    if query:
        students = students.filter(Q(name__contains=query) | Q(student_number__iexact=query.upper()))
    if class_id.isdigit():
        students = students.filter(school_class_id=int(class_id))
    return students_with_categories(students.select_related("school")).order_by(
        "school__code", "school_class__grade", "school_class__number", "name"
    )
