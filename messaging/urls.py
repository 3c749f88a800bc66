"""The messaging API's paths (DESIGN.md section 6), included under /api/v1/."""

from django.urls import path

from messaging import apis

urlpatterns = [
    path("threads/", apis.ThreadListCreateApi.as_view(), name="thread-list"),
    path("threads/<uuid:thread_id>/", apis.ThreadDetailApi.as_view(), name="thread-detail"),
    path(
        "threads/<uuid:thread_id>/messages/",
        apis.MessageListCreateApi.as_view(),
        name="thread-messages",
    ),
    path("threads/<uuid:thread_id>/read/", apis.ThreadMarkReadApi.as_view(), name="thread-read"),
    path(
        "messages/<uuid:message_id>/retract/",
        apis.MessageRetractApi.as_view(),
        name="message-retract",
    ),
    path(
        "message-attachments/<uuid:attachment_id>/download/",
        apis.MessageAttachmentDownloadApi.as_view(),
        name="message-attachment-download",
    ),
]
