from django.urls import include, path

from portal.api.me import MeApi

urlpatterns = [
    path("me/", MeApi.as_view(), name="me"),
    path("", include("portal.notifications.api_urls")),
    path("", include("portal.audit.api_urls")),
    path("", include("referrals.urls")),
    path("", include("reports.api_urls")),
    path("", include("messaging.urls")),
]
