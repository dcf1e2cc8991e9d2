"""Pages about students: a class, the roster search. (A student's own page, with their visits, is in visits.)"""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from schools.models import SchoolClass
from schools.privacy import works_with_students
from schools.scoping import get_object_for_user
from students.models import Student
from students.selectors import student_search, students_with_categories

PAGE_SIZE = 50


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
        {"school_class": school_class, "sees_sensitive": works_with_students(request.user)},
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
    if not works_with_students(request.user):
        classes = classes.none()  # the bureau searches by name across schools; a class menu would be thousands long
    return render(
        request,
        "students/student_list.html",
        {
            "page": page,
            "query": query,
            "class_id": class_id,
            "classes": classes,
            "sees_sensitive": works_with_students(request.user),
        },
    )
