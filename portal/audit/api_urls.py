"""The audit endpoints, included under ``/api/v1/`` by portal/api/urls.py."""

from django.urls import path

from portal.audit.apis import AuditEventExportApi, AuditEventListApi

urlpatterns = [
    path("audit-events/", AuditEventListApi.as_view(), name="audit-event-list"),
    path("audit-events/export.csv", AuditEventExportApi.as_view(), name="audit-event-export"),
]
