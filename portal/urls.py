from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated

from portal.core import health, views

# The split Swagger view serves its script as a file, so the strict CSP needs no inline script.
docs_permissions: list[type[BasePermission]] = (
    [AllowAny] if settings.API_DOCS_PUBLIC else [IsAuthenticated]
)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/", include("portal.accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("_allauth/", include("allauth.headless.urls")),
    path("admin/", admin.site.urls),
    path("notifications/", include("portal.notifications.urls")),
    path("reports/", include("reports.urls")),
    path("audit/", include("portal.audit.urls")),
    path("messages/", include("messaging.portal_urls")),
    path("referrals/", include("referrals.portal_urls")),
    path("api/v1/", include("portal.api.urls")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=docs_permissions),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", permission_classes=docs_permissions
        ),
        name="api-docs",
    ),
]
