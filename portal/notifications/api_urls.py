"""The notification endpoints, included under ``/api/v1/`` by portal/api/urls.py."""

from django.urls import path

from portal.notifications.apis import (
    NotificationListApi,
    NotificationPreferenceApi,
    NotificationReadAllApi,
    NotificationReadApi,
)

urlpatterns = [
    path("notifications/", NotificationListApi.as_view(), name="notification-list"),
    path(
        "notifications/preferences/",
        NotificationPreferenceApi.as_view(),
        name="notification-preferences",
    ),
    path("notifications/read-all/", NotificationReadAllApi.as_view(), name="notification-read-all"),
    path(
        "notifications/<uuid:notification_id>/read/",
        NotificationReadApi.as_view(),
        name="notification-read",
    ),
]
