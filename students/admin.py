"""Students in the bureau admin's back office: read-only and minimised (DESIGN §8).

The bureau does not work with students: it may look a student up, but sees the identifiers masked,
no home address, no guardian phone in full and no sensitive category. Rosters are changed by the
schools through the import, which checks and audits every change; nothing is edited here.
"""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from schools.privacy import mask_id_number, mask_phone
from students.models import SENSITIVE_CATEGORIES, Guardian, Student, StudentCategory


class ReadOnlyMixin:
    """Nothing is added, changed or deleted through the back office."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _without_sensitive(queryset: QuerySet) -> QuerySet:
    return queryset.exclude(category__in=SENSITIVE_CATEGORIES)


class GuardianInline(ReadOnlyMixin, admin.TabularInline):
    model = Guardian
    extra = 0
    fields = ["name", "relation", "masked_phone"]
    readonly_fields = fields

    @admin.display(description="联系电话")
    def masked_phone(self, guardian: Guardian) -> str:
        return mask_phone(guardian.phone)


class StudentCategoryInline(ReadOnlyMixin, admin.TabularInline):
    model = StudentCategory
    extra = 0
    fields = ["category", "start", "end", "source"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return _without_sensitive(super().get_queryset(request))


@admin.register(Student)
class StudentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "masked_student_number", "gender", "school", "school_class", "status"]
    list_filter = ["status", "school__zone", "school"]
    search_fields = ["name", "=student_number"]
    list_select_related = ["school", "school_class"]
    fields = [
        "name",
        "gender",
        "masked_student_number",
        "masked_id_number",
        "birth_year",
        "school",
        "school_class",
        "status",
    ]
    readonly_fields = fields
    inlines = [GuardianInline, StudentCategoryInline]

    @admin.display(description="学籍号")
    def masked_student_number(self, student: Student) -> str:
        return mask_id_number(student.student_number)

    @admin.display(description="身份证件号")
    def masked_id_number(self, student: Student) -> str:
        return mask_id_number(student.id_number) or "—"

    @admin.display(description="出生年份")
    def birth_year(self, student: Student) -> str:
        return f"{student.birth_date:%Y}年" if student.birth_date else "—"


@admin.register(StudentCategory)
class StudentCategoryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["student", "category", "start", "end", "source"]
    list_filter = ["source"]
    search_fields = ["student__name", "=student__student_number"]
    list_select_related = ["student"]
    fields = ["student", "category", "start", "end", "source"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return _without_sensitive(super().get_queryset(request))
