"""Portal pages, included at ``/notifications/`` by portal/urls.py."""

from django.urls import path

from portal.notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.notification_list, name="list"),
    path("read-all/", views.notification_read_all, name="read-all"),
    path("preferences/", views.notification_preferences, name="preferences"),
    path("<uuid:notification_id>/read/", views.notification_read, name="read"),
    path("<uuid:notification_id>/open/", views.notification_open, name="open"),
]
