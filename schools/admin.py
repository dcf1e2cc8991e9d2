"""The bureau admin's back office: campaign and phases, zones, schools, accounts, assignments."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from schools.models import (
    AuditEvent,
    ImportJob,
    InspectorAssignment,
    School,
    SchoolClass,
    SchoolYear,
    TeachingAssignment,
    User,
    Zone,
)
from schools.privacy import mask_phone, redact_contacts
from schools.services import account_school_change

# The campaign and its phases are edited in visits/admin.py: moving a phase moves the visits filed.


@admin.register(SchoolYear)
class SchoolYearAdmin(admin.ModelAdmin):
    list_display = ["name", "start", "end"]


@admin.register(Zone)
class ZoneAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["name", "code"]


class InspectorAssignmentInline(admin.TabularInline):
    model = InspectorAssignment
    extra = 0
    autocomplete_fields = ["inspector"]
    verbose_name = _("包联领导")
    verbose_name_plural = _("包联领导")


@admin.register(School)
class SchoolAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "zone", "contact_name", "masked_contact_phone"]
    list_filter = ["zone", "kind"]
    search_fields = ["name", "code"]
    inlines = [InspectorAssignmentInline]

    @admin.display(description=_("联系电话"))
    def masked_contact_phone(self, school: School) -> str:
        """Phone numbers are masked in lists (DESIGN §8); the change form shows the one being edited."""
        return redact_contacts(school.contact_phone)


@admin.register(SchoolClass)
class SchoolClassAdmin(admin.ModelAdmin):
    list_display = ["__str__", "school", "school_year", "head_teacher"]
    list_filter = ["school_year", "grade", "school__zone"]
    search_fields = ["school__name"]
    autocomplete_fields = ["school", "head_teacher"]
    list_select_related = ["school", "school_year", "head_teacher"]


@admin.register(TeachingAssignment)
class TeachingAssignmentAdmin(admin.ModelAdmin):
    list_display = ["teacher", "school_class", "subject"]
    search_fields = ["teacher__real_name", "teacher__username", "school_class__school__name"]
    autocomplete_fields = ["teacher", "school_class"]
    list_select_related = ["teacher", "school_class__school"]


@admin.register(InspectorAssignment)
class InspectorAssignmentAdmin(admin.ModelAdmin):
    list_display = ["inspector", "school"]
    list_filter = ["inspector"]
    search_fields = ["inspector__real_name", "school__name"]
    autocomplete_fields = ["inspector", "school"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["masked_username", "real_name", "masked_phone", "role", "school", "zone", "is_active", "last_login"]
    list_display_links = ["masked_username"]
    list_filter = ["role", "is_active", "zone", "school__zone"]
    search_fields = ["username", "real_name", "phone", "school__name"]
    list_select_related = ["school", "zone"]
    autocomplete_fields = ["school", "zone"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("个人信息"), {"fields": ["real_name", "phone", "email"]}),
        (_("角色与单位"), {"fields": ["role", "school", "zone", "must_change_password"]}),
        (_("权限"), {"fields": ["is_active", "is_staff", "is_superuser"]}),
        (_("时间"), {"fields": ["last_login", "date_joined"]}),
    ]

    def save_model(self, request, obj, form, change):
        """A move to another school goes through ``account_school_change`` (it ends the account's
        head-teacher and teaching assignments at the old school)."""
        if change and "school" in form.changed_data:
            new_school = obj.school
            obj.school = User.objects.get(pk=obj.pk).school
            super().save_model(request, obj, form, change)
            account_school_change(user=obj, school=new_school, acting_user=request.user)
            obj.refresh_from_db()
            return
        super().save_model(request, obj, form, change)

    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": ["username", "real_name", "role", "school", "zone", "password1", "password2"],
            },
        ),
    ]

    # Staff phone numbers (and usernames, which are usually the mobile number) are masked in the
    # list (DESIGN §8, issue 14); search still finds an account by its full number.
    @admin.display(description=_("用户名"), ordering="username")
    def masked_username(self, user: User) -> str:
        return redact_contacts(user.username)

    @admin.display(description=_("手机号"))
    def masked_phone(self, user: User) -> str:
        return mask_phone(user.phone) or "—"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the application writes itself: readable and searchable, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "action", "object_type", "object_id", "ip", "path"]
    list_filter = ["action", ("at", admin.DateFieldListFilter), "object_type"]
    search_fields = ["username", "object_id", "ip", "path"]
    date_hierarchy = "at"


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "school", "kind", "file_name", "status", "total_rows", "invalid_rows"]
    list_filter = ["kind", "status"]
    search_fields = ["school__name", "file_name"]
    # ``result`` holds one-time passwords until they are handed out; ``preview`` and ``problems``
    # hold the file's values (names, phone and ID numbers): the back office shows only how many.
    exclude = ["result", "preview", "problems"]
    readonly_fields = ["problem_count"]

    @admin.display(description=_("问题"))
    def problem_count(self, job: ImportJob) -> str:
        return f"{len(job.problems or [])} 条（明细只在学校的导入页面显示）"
