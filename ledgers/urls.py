from django.urls import path

from ledgers.views import dashboards, feedback, sheet, work

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

# the special-student ledgers (issue 10): support plans (一生一策), the care log, the calendar, robots
from ledgers.views import care as care_views  # noqa: E402
from ledgers.views import support as support_views  # noqa: E402

urlpatterns += [
    path("support/", support_views.support_mine, name="support_mine"),
    path("support/new/", support_views.support_plan_create, name="support_plan_create"),
    path("support/<uuid:public_id>/", support_views.support_plan_detail, name="support_plan_detail"),
    path("support/<uuid:public_id>/edit/", support_views.support_plan_edit, name="support_plan_edit"),
    path("schools/<int:school_id>/support/", support_views.support_overview, name="support_overview"),
    path("schools/<int:school_id>/support.xlsx", support_views.support_export, name="support_export"),
    path("schools/<int:school_id>/care/", care_views.care_overview, name="care_overview"),
    path("schools/<int:school_id>/care.xlsx", care_views.care_month_export, name="care_month_export"),
    path("care/<uuid:public_id>/", care_views.care_child, name="care_child"),
    path("care/<uuid:public_id>/ask/", care_views.care_ask, name="care_ask"),
    path("care/<uuid:public_id>/meeting/", care_views.care_meeting, name="care_meeting"),
    path("schools/<int:school_id>/calendar/", care_views.school_calendar_view, name="school_calendar"),
    path("calendar/", care_views.county_calendar_view, name="county_calendar"),
    path("calendar/<int:pk>/delete/", care_views.calendar_override_delete, name="calendar_override_delete"),
    path("schools/<int:school_id>/robot/", care_views.school_robot, name="school_robot"),
]

# the feedback ledger (问题反馈台账) and the work ledger (工作台账), issue 11
urlpatterns += [
    path("ledgers/feedback/", feedback.feedback_ledger, name="feedback_ledger"),
    path("ledgers/feedback/export.xlsx", feedback.feedback_export, name="feedback_export"),
    path("ledgers/feedback/county/", feedback.feedback_county, name="feedback_county"),
    path("ledgers/feedback/group/", feedback.feedback_group, name="feedback_group"),
    path("ledgers/feedback/items/<uuid:public_id>/", feedback.feedback_item, name="feedback_item"),
    path(
        "ledgers/feedback/items/<uuid:public_id>/triage/",
        feedback.feedback_item_triage_view,
        name="feedback_item_triage",
    ),
    path(
        "ledgers/feedback/items/<uuid:public_id>/escalate/",
        feedback.feedback_item_escalate_view,
        name="feedback_item_escalate",
    ),
    path(
        "ledgers/feedback/items/<uuid:public_id>/reply/", feedback.feedback_item_reply_view, name="feedback_item_reply"
    ),
    path("ledgers/feedback/issues/<uuid:public_id>/", feedback.feedback_issue, name="feedback_issue"),
    path(
        "ledgers/feedback/issues/<uuid:public_id>/resolve/",
        feedback.feedback_issue_resolve_view,
        name="feedback_issue_resolve",
    ),
    path("ledgers/work/classes/<int:class_id>/", work.work_class, name="work_class"),
    path("ledgers/work/classes/<int:class_id>/export.xlsx", work.work_class_export, name="work_class_export"),
    path("ledgers/work/schools/<int:school_id>/", work.work_school, name="work_school"),
    path("ledgers/work/schools/<int:school_id>/export.xlsx", work.work_school_export, name="work_school_export"),
    path("ledgers/work/export/", work.work_export_start, name="work_export_start"),
    path("ledgers/exports/<uuid:public_id>/", work.ledger_export_job, name="ledger_export_job"),
    path("ledgers/exports/<uuid:public_id>/file/", work.ledger_export_file, name="ledger_export_file"),
]
