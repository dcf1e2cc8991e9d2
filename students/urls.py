from django.urls import path

from schools.urls import import_urls
from schools.views import ImportSpec
from students import tasks, views


def _roster_template():
    from students.roster_template import template_workbook

    return template_workbook()


ROSTER_IMPORT = ImportSpec(
    kind="roster",
    title="学生名册",
    validate_task=tasks.roster_import_validate,
    apply_task=tasks.roster_import_apply,
    template_workbook=_roster_template,
    url_prefix="roster_import",
    hint="可直接上传从全国中小学生学籍信息管理系统导出的名册；按学籍号匹配，已有学生会被更新，名册中没有的学生不会被删除。",
)

urlpatterns = [
    path("students/", views.student_list, name="student_list"),
    path("classes/<int:pk>/", views.class_detail, name="class_detail"),
    *import_urls("roster/import", ROSTER_IMPORT),
]
