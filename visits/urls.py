from django.urls import path

from visits.views import records, safety, school

urlpatterns = [
    # the teacher's pages and the record itself
    path("", records.home, name="home"),
    path("students/<uuid:public_id>/", records.student_detail, name="student_detail"),
    path("students/<uuid:public_id>/access/", records.student_access_history, name="student_access_history"),
    path("visits/new/", records.visit_create, name="visit_create"),
    path("visits/<uuid:public_id>/", records.visit_detail, name="visit_detail"),
    path("visits/<uuid:public_id>/edit/", records.visit_edit, name="visit_edit"),
    path("attachments/<uuid:public_id>/", records.attachment_file, name="attachment_file"),
    path("attachments/<uuid:public_id>/delete/", records.attachment_remove, name="attachment_remove"),
    # school list, export, print
    path("visits/", school.visit_list, name="visit_list"),
    path("visits/export.xlsx", school.visit_export, name="visit_export"),
    path("visits/<uuid:public_id>/print/", school.visit_print, name="visit_print"),
    # a school's visits for the county's roles (zone admin, inspector, bureau admin)
    path("schools/<int:school_id>/visits/", school.school_visit_list, name="school_visit_list"),
    path("schools/<int:school_id>/visits/export.xlsx", school.school_visit_export, name="school_visit_export"),
    # the safety report (家访报备) and the notifications it raises
    path("safety/new/", safety.safety_new, name="safety_new"),
    path("safety/mine/", safety.safety_mine, name="safety_mine"),
    path("safety/board/", safety.safety_board_view, name="safety_board"),
    path("safety/<uuid:public_id>/", safety.safety_detail, name="safety_detail"),
    path("safety/<uuid:public_id>/check-in/", safety.safety_check_in, name="safety_check_in"),
    path("safety/<uuid:public_id>/close/", safety.safety_close, name="safety_close"),
    path("notifications/", safety.notification_list, name="notification_list"),
]
