"""Portal pages, included at ``/messages/`` by portal/urls.py."""

from django.urls import path

from messaging import views

app_name = "messaging"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("new/", views.thread_new, name="thread-new"),
    path("badge/", views.nav_badge, name="badge"),
    path("retention/", views.retention_settings, name="retention"),
    path("<uuid:thread_id>/", views.thread_detail, name="thread"),
    path("<uuid:thread_id>/updates/", views.thread_updates, name="updates"),
    path("<uuid:thread_id>/send/", views.message_send, name="send"),
    path("<uuid:thread_id>/read/", views.thread_read, name="read"),
    path("m/<uuid:message_id>/retract/", views.message_retract, name="retract"),
    path(
        "attachments/<uuid:attachment_id>/download/",
        views.attachment_download,
        name="attachment",
    ),
]
