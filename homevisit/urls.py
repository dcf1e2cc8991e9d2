from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "万名教师大家访 · 管理后台"
admin.site.site_title = "家访管理后台"
admin.site.index_title = "教育局管理"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("visits.urls")),
    path("", include("schools.urls")),
    path("", include("students.urls")),
    path("", include("ledgers.urls")),
    path("", include("monitoring.urls")),
    path("", include("oversight.urls")),
]
