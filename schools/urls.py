from django.contrib.auth import views as auth_views
from django.urls import path

from schools import tasks, views


def _staff_template():
    from schools.staff_import import template_workbook

    return template_workbook()


STAFF_IMPORT = views.ImportSpec(
    kind="staff",
    title="教职工名单",
    validate_task=tasks.staff_import_validate,
    apply_task=tasks.staff_import_apply,
    template_workbook=_staff_template,
    url_prefix="staff_import",
    hint="每位教职工一行：姓名、手机号（作为登录账号）、身份、班主任班级、任教班级。新账号的初始密码在导入后显示一次。",
)


def import_urls(prefix: str, spec: views.ImportSpec) -> list:
    """The URLs of one import kind; the roster import mounts the same views with its own spec."""
    name = spec.url_prefix
    extra = {"spec": spec}
    return [
        path(f"{prefix}/", views.import_upload, extra, name=f"{name}_upload"),
        path(f"{prefix}/template.xlsx", views.import_template, extra, name=f"{name}_template"),
        path(f"{prefix}/<uuid:public_id>/", views.import_job, extra, name=f"{name}_job"),
        path(f"{prefix}/<uuid:public_id>/confirm/", views.import_job_confirm_view, extra, name=f"{name}_confirm"),
        path(f"{prefix}/<uuid:public_id>/cancel/", views.import_job_cancel_view, extra, name=f"{name}_cancel"),
        path(f"{prefix}/<uuid:public_id>/problems.xlsx", views.import_problems_xlsx, extra, name=f"{name}_problems"),
    ]


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/locked/", views.locked_accounts_view, name="locked_accounts"),
    path("accounts/locked/unlock/", views.locked_account_unlock, name="locked_account_unlock"),
    path("schools/<int:pk>/", views.school_detail, name="school_detail"),
    path("schools/<int:pk>/staff/", views.school_staff, name="school_staff"),
    path("classes/new/", views.class_create, name="class_create"),
    *import_urls("staff/import", STAFF_IMPORT),
]
