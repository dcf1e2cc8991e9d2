from django.contrib import admin

from students.models import Guardian, Student, StudentCategory


class GuardianInline(admin.TabularInline):
    model = Guardian
    extra = 0


class StudentCategoryInline(admin.TabularInline):
    model = StudentCategory
    extra = 0


@admin.register(Student)
class StudentAdmin(admin.ModelAdmin):
    list_display = ["name", "student_number", "gender", "school", "school_class", "status"]
    list_filter = ["status", "school__zone", "school"]
    search_fields = ["name", "student_number"]
    list_select_related = ["school", "school_class"]
    autocomplete_fields = ["school", "school_class"]
    inlines = [GuardianInline, StudentCategoryInline]


@admin.register(StudentCategory)
class StudentCategoryAdmin(admin.ModelAdmin):
    list_display = ["student", "category", "start", "end", "source"]
    list_filter = ["category", "source"]
    search_fields = ["student__name", "student__student_number"]
    autocomplete_fields = ["student"]
    list_select_related = ["student"]
