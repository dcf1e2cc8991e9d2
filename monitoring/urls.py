from django.urls import path

from monitoring import views

urlpatterns = [
    path("health/", views.LoadBalancerHealth.as_view(), name="health"),
    path("health/detail/", views.OperatorHealth.as_view(), name="health_detail"),
]
