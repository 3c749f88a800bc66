"""The messaging API (DESIGN.md section 6): thin views over the selectors and services.

```
GET  /api/v1/threads/                      your threads, newest activity first, with unread_count
POST /api/v1/threads/                      {referral?, subject, body, practice?, clinic?}
GET  /api/v1/threads/{id}/                 one thread (the list item)
GET  /api/v1/threads/{id}/messages/        ?since=&cursor=&page_size=  oldest first
POST /api/v1/threads/{id}/messages/        JSON {body}, or multipart: body + "attachments" files
POST /api/v1/threads/{id}/read/            {through?}: mark read up to now (or a message)
POST /api/v1/messages/{id}/retract/        the author, within 15 minutes
GET  /api/v1/message-attachments/{id}/download/
```

Attachments are sent as ``multipart/form-data`` with the text in ``body`` and each file in a
field named ``attachments`` (repeat the field for several files, five at most; each is checked like
a referral attachment: PDF, PNG, JPEG or plain text by content, 25 MB, malware scan).

Inputs are strict: unknown fields and wrong JSON types get 400 and change nothing. A thread you do
not take part in answers 404, exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import selectors, services
from messaging.models import BODY_MAX_LENGTH, SUBJECT_MAX_LENGTH, Message, Thread
from portal.accounts.models import User
from portal.api.errors import AttachmentUnavailable, ServiceError
from portal.api.parsers import MultiPartParser
from portal.core.downloads import file_download_response
from portal.crypto.errors import DecryptionError
from portal.crypto.storage import EncryptedFileMissing
from portal.uploads import EXTENSIONS
from referrals.apis import OrganizationRefSerializer, StrictCharField, StrictSerializer

NOT_FOUND = OpenApiResponse(description="No such thread, or not yours (the same answer).")
MESSAGE_PATH = "/api/v1/threads/{thread}/messages/"


def _user(request: Request) -> User:
    """The signed-in user (the default permission admits no one else)."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


# --- output --------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="ThreadListItem")
class ThreadOutputSerializer(serializers.Serializer):
    """The thread list item: {"id", "referral", "subject", "unread_count", "last_message_at"}
    plus the thread's kind, reference number and the two organisations."""

    id = serializers.UUIDField(source="public_id")
    referral = serializers.SerializerMethodField()
    subject = serializers.CharField()
    unread_count = serializers.IntegerField()
    last_message_at = serializers.DateTimeField()
    kind = serializers.CharField()
    reference = serializers.CharField()
    practice = OrganizationRefSerializer()
    clinic = OrganizationRefSerializer()

    def get_referral(self, thread: Thread) -> str | None:
        return str(thread.referral.public_id) if thread.referral is not None else None


@extend_schema_serializer(component_name="MessageAuthor")
class AuthorOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField(source="get_full_name")


@extend_schema_serializer(component_name="MessageAttachment")
class AttachmentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField(source="original_name")
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, attachment: Any) -> str:
        return f"/api/v1/message-attachments/{attachment.public_id}/download/"


# The fields of MessageOutputSerializer describe its output (the schema), while its
# ``to_representation`` builds the output directly: DRF's generic path deep-copies every declared
# field for each message and walks each attribute through its source machinery, which was most of
# a thread page's CPU. A test pins both paths to the same output.
_TIMESTAMP = serializers.DateTimeField()


@extend_schema_serializer(component_name="Message")
class MessageOutputSerializer(serializers.Serializer):
    """{"id", "author", "body", "kind", "created_at", "attachments", "retracted"}; ``body`` is null
    and ``attachments`` empty once retracted; ``author`` is null for system messages."""

    id = serializers.UUIDField(source="public_id")
    author = AuthorOutputSerializer(allow_null=True)
    author_side = serializers.CharField()
    body = serializers.CharField(allow_null=True)
    kind = serializers.CharField()
    created_at = serializers.DateTimeField()
    attachments = AttachmentOutputSerializer(many=True, source="attachment_list")
    retracted = serializers.BooleanField(source="is_retracted")
    retracted_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: Message) -> dict[str, Any]:
        author = instance.author
        timestamp = _TIMESTAMP.to_representation
        return {
            "id": str(instance.public_id),
            "author": (
                None
                if author is None
                else {"id": str(author.public_id), "name": author.get_full_name()}
            ),
            "author_side": str(instance.author_side),
            "body": instance.body,
            "kind": str(instance.kind),
            "created_at": timestamp(instance.created_at),
            "attachments": [
                {
                    "id": str(attachment.public_id),
                    "name": attachment.original_name,
                    "content_type": attachment.content_type,
                    "size": attachment.size,
                    "sha256": attachment.sha256,
                    "download_url": f"/api/v1/message-attachments/{attachment.public_id}/download/",
                }
                for attachment in instance.attachment_list
            ],
            "retracted": instance.is_retracted,
            "retracted_at": (
                None if instance.retracted_at is None else timestamp(instance.retracted_at)
            ),
        }


@extend_schema_serializer(component_name="MessagePage")
class MessagePageSerializer(serializers.Serializer):
    results = MessageOutputSerializer(many=True)
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)


def _message_data(message: Message) -> dict[str, Any]:
    return dict(MessageOutputSerializer(message).data)


# --- threads -------------------------------------------------------------------------------------


class ThreadPagination(CursorPagination):
    ordering = ("-last_message_at", "-id")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class ThreadListCreateApi(APIView):
    parser_classes = [JSONParser]
    # Read by drf-spectacular too: the schema describes the page envelope and the cursor.
    pagination_class = ThreadPagination

    @extend_schema_serializer(component_name="ThreadCreateInput")
    class InputSerializer(StrictSerializer):
        referral = serializers.UUIDField(
            required=False,
            allow_null=True,
            help_text="Post into this referral's thread instead of opening a general one.",
        )
        subject = StrictCharField(
            required=False, allow_blank=True, max_length=SUBJECT_MAX_LENGTH, trim_whitespace=False
        )
        body = StrictCharField(allow_blank=True, max_length=BODY_MAX_LENGTH, trim_whitespace=False)
        practice = serializers.UUIDField(
            required=False, allow_null=True, help_text="Required from clinic staff."
        )
        clinic = serializers.UUIDField(
            required=False, allow_null=True, help_text="Only if the portal serves several clinics."
        )

    @extend_schema(
        operation_id="threads_list",
        summary="Your threads, newest activity first, with unread counts",
        parameters=[OpenApiParameter("page_size", int, description="1-100, default 25.")],
        responses={
            200: ThreadOutputSerializer(many=True),
            404: OpenApiResponse(description="The cursor is not valid."),
        },
    )
    def get(self, request: Request) -> Response:
        threads = selectors.thread_list_for_user(user=request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(threads, request, view=self) or []
        selectors.threads_reveal(user=request.user, threads=page)
        data = ThreadOutputSerializer(page, many=True).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="threads_create",
        summary="Open a general thread, or write into a referral's thread",
        description=(
            "Without `referral`: a general thread between a practice and the clinic, with "
            "`subject` and the first message `body` (practice members open it with the clinic; "
            "clinic staff name the `practice`). With `referral`: `body` is posted into the "
            "referral's thread (`subject` is ignored). 201 with the thread either way."
        ),
        request=InputSerializer,
        responses={201: ThreadOutputSerializer, 400: OpenApiTypes.OBJECT, 404: NOT_FOUND},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = _user(request)
        referral_id = data.get("referral")
        if referral_id is not None:
            thread = selectors.referral_thread_for_user(user=user, referral_id=referral_id)
            services.message_send(actor=user, thread=thread, body=data["body"])
        else:
            thread = services.thread_create(
                actor=user,
                subject=data.get("subject", ""),
                body=data["body"],
                practice_id=data.get("practice"),
                clinic_id=data.get("clinic"),
            )
        item = selectors.thread_with_unread_for_user(user=user, thread=thread)
        return Response(ThreadOutputSerializer(item).data, status=status.HTTP_201_CREATED)


class ThreadDetailApi(APIView):
    @extend_schema(
        operation_id="threads_retrieve",
        summary="One thread with its unread count",
        responses={200: ThreadOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, thread_id: str) -> Response:
        thread = selectors.thread_get_for_user(user=request.user, public_id=thread_id)
        item = selectors.thread_with_unread_for_user(user=request.user, thread=thread)
        selectors.threads_reveal(user=request.user, threads=[item])
        return Response(ThreadOutputSerializer(item).data)


class ThreadMarkReadApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="ThreadReadInput")
    class InputSerializer(StrictSerializer):
        through = serializers.UUIDField(
            required=False,
            allow_null=True,
            help_text="Mark read up to this message of the thread (default: its newest).",
        )

    @extend_schema(
        operation_id="threads_read",
        summary="Mark the thread read (idempotent)",
        description=(
            "Up to the newest message now, or up to `through`. A read position never moves "
            "backwards; repeating the call changes nothing. Answers the thread item."
        ),
        request=InputSerializer,
        responses={200: ThreadOutputSerializer, 400: OpenApiTypes.OBJECT, 404: NOT_FOUND},
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = selectors.thread_get_for_user(user=request.user, public_id=thread_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        through = None
        through_id = serializer.validated_data.get("through")
        if through_id is not None:
            through = Message.objects.filter(thread_id=thread.pk, public_id=through_id).first()
            if through is None:
                raise ServiceError(
                    "through names no message of this thread.",
                    code="invalid",
                    extra={"fields": {"through": "Unknown message."}},
                )
        user = _user(request)
        services.thread_mark_read(actor=user, thread=thread, through=through)
        item = selectors.thread_with_unread_for_user(user=user, thread=thread)
        return Response(ThreadOutputSerializer(item).data)


# --- messages ------------------------------------------------------------------------------------


class MessageListCreateApi(APIView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema_serializer(component_name="MessageListQuery")
    class FilterSerializer(StrictSerializer):
        since = serializers.CharField(required=False, max_length=64)
        cursor = serializers.CharField(required=False, max_length=64)
        page_size = serializers.IntegerField(
            required=False, min_value=1, max_value=selectors.MAX_PAGE_SIZE
        )

    @extend_schema_serializer(component_name="MessageCreateInput")
    class InputSerializer(StrictSerializer):
        body = StrictCharField(allow_blank=True, max_length=BODY_MAX_LENGTH, trim_whitespace=False)
        attachments = serializers.ListField(
            child=serializers.FileField(allow_empty_file=True),
            required=False,
            max_length=services.MAX_ATTACHMENTS,
        )

    @extend_schema(
        operation_id="threads_messages_list",
        summary="The thread's messages, oldest first",
        description=(
            "Cursor-paginated: `next` leads to newer messages, `previous` to older ones. Poll "
            "with `since`: a message id of this thread (the messages after it) or an ISO 8601 "
            "timestamp with a time zone (messages created after it); an empty `results` means "
            "nothing new. Reading message bodies is audited."
        ),
        parameters=[
            OpenApiParameter("since", str, description="A message id, or an ISO 8601 time."),
            OpenApiParameter("cursor", str, description="From `next` or `previous`."),
            OpenApiParameter("page_size", int, description="1-100, default 50."),
        ],
        responses={200: MessagePageSerializer, 400: OpenApiTypes.OBJECT, 404: NOT_FOUND},
    )
    def get(self, request: Request, thread_id: str) -> Response:
        thread = selectors.thread_get_for_user(user=request.user, public_id=thread_id)
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        page = selectors.message_list_for_thread(
            user=request.user,
            thread=thread,
            since=filters.validated_data.get("since"),
            cursor=filters.validated_data.get("cursor"),
            page_size=filters.validated_data.get("page_size", selectors.DEFAULT_PAGE_SIZE),
        )
        base = request.build_absolute_uri(MESSAGE_PATH.format(thread=thread.public_id))
        size = filters.validated_data.get("page_size")
        suffix = f"&page_size={size}" if size else ""
        return Response(
            {
                "results": MessageOutputSerializer(page.messages, many=True).data,
                "next": f"{base}?cursor={page.next_cursor}{suffix}" if page.next_cursor else None,
                "previous": (
                    f"{base}?cursor={page.previous_cursor}{suffix}"
                    if page.previous_cursor
                    else None
                ),
            }
        )

    @extend_schema(
        operation_id="threads_messages_create",
        summary="Send a message",
        description=(
            'JSON `{"body"}`, or `multipart/form-data` with `body` and up to five files in '
            "fields named `attachments`. The body holds up to 20,000 characters and may be "
            "empty only when files are attached. Everyone else in the thread is notified "
            "(no content in the notification)."
        ),
        request={
            "application/json": InputSerializer,
            "multipart/form-data": InputSerializer,
        },
        responses={
            201: MessageOutputSerializer,
            400: OpenApiTypes.OBJECT,
            404: NOT_FOUND,
            413: OpenApiTypes.OBJECT,
            415: OpenApiTypes.OBJECT,
        },
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = selectors.thread_get_for_user(user=request.user, public_id=thread_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = services.message_send(
            actor=_user(request),
            thread=thread,
            body=serializer.validated_data["body"],
            attachments=serializer.validated_data.get("attachments", []),
        )
        return Response(_message_data(message), status=status.HTTP_201_CREATED)


class MessageRetractApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="MessageRetractInput")
    class InputSerializer(StrictSerializer):
        pass

    @extend_schema(
        operation_id="messages_retract",
        summary="Retract your message (within 15 minutes)",
        description=(
            "The body and attachments are destroyed; the message stays as retracted. 403 for "
            "someone else's message, 409 when already retracted or after 15 minutes."
        ),
        request=None,
        responses={
            200: MessageOutputSerializer,
            403: OpenApiTypes.OBJECT,
            404: NOT_FOUND,
            409: OpenApiTypes.OBJECT,
        },
    )
    def post(self, request: Request, message_id: str) -> Response:
        message = selectors.message_get_for_user(user=request.user, public_id=message_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        retracted = services.message_retract(actor=_user(request), message=message)
        return Response(_message_data(retracted))


class MessageAttachmentDownloadApi(APIView):
    @extend_schema(
        operation_id="message_attachments_download",
        summary="A message attachment's bytes",
        description=(
            "Served as `Content-Disposition: attachment`, decrypted and checked against the "
            "stored SHA-256 (a tampered file fails closed). Audited."
        ),
        # The stored type, one of the upload allow-list (portal.uploads).
        responses={
            **{(200, media_type): OpenApiTypes.BINARY for media_type in EXTENSIONS},
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, attachment_id: str) -> StreamingHttpResponse:
        try:
            attachment, chunks = selectors.message_attachment_open_for_user(
                user=request.user, public_id=attachment_id
            )
        except (DecryptionError, EncryptedFileMissing):
            raise AttachmentUnavailable(
                "The file failed its integrity check and was not sent; the event was recorded "
                "in the security log."
            ) from None
        return file_download_response(
            chunks,
            content_type=attachment.content_type,
            filename=attachment.original_name,
            size=attachment.size,
        )
