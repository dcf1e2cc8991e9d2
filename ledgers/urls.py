from django.urls import path

from ledgers.views import dashboards, sheet

urlpatterns = [
    # the bureau's statistics sheet (「万名教师大家访」活动情况统计表)
    path("statistics/sheet.xlsx", sheet.statistics_sheet, name="statistics_sheet"),
    # dashboards (DESIGN §7) and the teacher assessment
    path("statistics/", dashboards.county_dashboard, name="statistics_county"),
    path("statistics/zones/<int:zone_id>/", dashboards.zone_dashboard, name="statistics_zone"),
    path("statistics/schools/<int:school_id>/", dashboards.school_dashboard, name="statistics_school"),
    path(
        "statistics/schools/<int:school_id>/classes/<int:class_id>/",
        dashboards.class_dashboard,
        name="statistics_class",
    ),
    path("statistics/schools/<int:school_id>/teachers/", dashboards.teacher_assessment, name="teacher_assessment"),
    path(
        "statistics/schools/<int:school_id>/teachers.xlsx",
        dashboards.teacher_assessment_xlsx,
        name="teacher_assessment_xlsx",
    ),
]
