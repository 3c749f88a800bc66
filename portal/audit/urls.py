"""Portal pages of the audit trail, included under ``/audit/``."""

from django.urls import path

from portal.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.audit_event_list, name="event-list"),
    path("export.csv", views.audit_event_export, name="event-export"),
]
