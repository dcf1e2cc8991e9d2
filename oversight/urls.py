from django.urls import path

from oversight import views

urlpatterns = [
    # review of submitted records (审核)
    path("review/", views.review_queue, name="review_queue"),
    path("review/settings/", views.review_settings, name="review_settings"),
    path("review/<uuid:public_id>/", views.review_decide, name="review_decide"),
    # random back-checks (抽查回访) and quality flags (质量提示)
    path("backchecks/", views.sample_list, name="sample_list"),
    path("backchecks/<uuid:public_id>/", views.sample_detail, name="sample_detail"),
    path("backchecks/checks/<uuid:public_id>/", views.back_check_save, name="back_check_save"),
    path("quality/schools/<int:school_id>/", views.quality_flags, name="quality_flags"),
    # inspections (督查记录) and rectification (整改)
    path("inspections/", views.inspection_list, name="inspection_list"),
    path("inspections/new/", views.inspection_new, name="inspection_new"),
    path("inspections/export.xlsx", views.inspection_export, name="inspection_export"),
    path("inspections/<uuid:public_id>/", views.inspection_detail, name="inspection_detail"),
    path("inspections/<uuid:public_id>/report/", views.rectification_report_view, name="rectification_report"),
    path("inspections/<uuid:public_id>/decide/", views.rectification_decide_view, name="rectification_decide"),
    path("inspections/files/<uuid:public_id>/", views.rectification_file, name="rectification_file"),
    # the best visits chosen (家访日志评选)
    path("cases/", views.case_gallery, name="case_gallery"),
    path("cases/selection/", views.case_selection, name="case_selection"),
    path("cases/nominate/<uuid:public_id>/", views.case_nominate_view, name="case_nominate"),
    path("cases/<uuid:public_id>/", views.case_detail, name="case_detail"),
    path("cases/<uuid:public_id>/advance/", views.case_advance_view, name="case_advance"),
    # targets per unit
    path("targets/", views.target_list, name="target_list"),
    path("targets/<int:pk>/delete/", views.target_delete, name="target_delete"),
]
