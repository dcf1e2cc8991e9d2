"""Pages about students: the role home page, classes, the roster, a student, the roster import."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from schools.models import AuditEvent, Role, SchoolClass
from schools.scoping import get_object_for_user
from schools.selectors import current_campaign_phase
from schools.services import audit_event_record
from schools.views import schools_home
from students.models import SENSITIVE_CATEGORIES, Student
from students.selectors import student_search, students_with_categories, teacher_classes

PAGE_SIZE = 50


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role lands on its own page: a teacher on their classes, a school admin on the school."""
    user = request.user
    if user.role == Role.SCHOOL_ADMIN:
        return redirect("school_detail", pk=user.school_id)
    if user.role == Role.TEACHER:
        campaign, phase = current_campaign_phase()
        return render(
            request,
            "students/teacher_home.html",
            {"classes": teacher_classes(user), "campaign": campaign, "phase": phase, "today": timezone.localdate()},
        )
    return schools_home(request)


@login_required
def class_detail(request: HttpRequest, pk: int) -> HttpResponse:
    school_class = get_object_for_user(
        SchoolClass.objects.select_related("school", "head_teacher").prefetch_related(
            Prefetch(
                "students",
                queryset=students_with_categories(Student.objects.active()).order_by("name"),
                to_attr="active_students",
            ),
            "assignments__teacher",
        ),
        request,
        pk=pk,
    )
    return render(
        request,
        "students/class_detail.html",
        {"school_class": school_class, "sees_sensitive": _works_with_students(request.user)},
    )


@login_required
def student_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:50]
    class_id = request.GET.get("class", "")
    page = Paginator(student_search(request.user, query=query, class_id=class_id), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    classes = (
        SchoolClass.objects.visible_to(request.user).select_related("school").order_by("school", "grade", "number")
    )
    if request.user.role not in (Role.TEACHER, Role.SCHOOL_ADMIN):
        classes = classes.none()  # the bureau searches by name across schools; a class menu would be thousands long
    return render(
        request,
        "students/student_list.html",
        {
            "page": page,
            "query": query,
            "class_id": class_id,
            "classes": classes,
            "sees_sensitive": _works_with_students(request.user),
        },
    )


@login_required
def student_detail(request: HttpRequest, public_id) -> HttpResponse:
    student = get_object_for_user(
        Student.objects.select_related("school", "school_class__head_teacher").prefetch_related(
            "guardians", "categories"
        ),
        request,
        public_id=public_id,
    )
    works_with = _works_with_students(request.user)
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="students.Student",
        object_id=str(student.public_id),
        detail={"full": works_with},
    )
    today = timezone.localdate()
    categories = [c for c in student.categories.all() if works_with or c.category not in SENSITIVE_CATEGORIES]
    return render(
        request,
        "students/student_detail.html",
        {
            "student": student,
            "categories": sorted(categories, key=lambda c: (not c.in_force_on(today), c.start)),
            "today": today,
            "works_with": works_with,
        },
    )


def _works_with_students(user) -> bool:
    """Teachers and school admins work with their students and see them whole; the county's roles
    read figures and masked identifiers (DESIGN §8). Scope has already limited which students."""
    return user.role in (Role.TEACHER, Role.SCHOOL_ADMIN)
