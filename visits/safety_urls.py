"""URLs of the safety report and the notification list (included from homevisit/urls.py)."""

from django.urls import path

from visits.views import safety

urlpatterns = [
    path("safety/new/", safety.safety_new, name="safety_new"),
    path("safety/mine/", safety.safety_mine, name="safety_mine"),
    path("safety/board/", safety.safety_board_view, name="safety_board"),
    path("safety/<uuid:public_id>/", safety.safety_detail, name="safety_detail"),
    path("safety/<uuid:public_id>/check-in/", safety.safety_check_in, name="safety_check_in"),
    path("safety/<uuid:public_id>/close/", safety.safety_close, name="safety_close"),
    path("notifications/", safety.notification_list, name="notification_list"),
]
