"""A populated practice: one of every object the API serves, made through the services.

The fuzz, query-budget and hostile-input tests need real objects behind every path parameter:
``build_world(cast)`` gives the cast's practice A a referral in treatment (outcomes data, an
unsigned and a signed report, its thread with a message and an attached file), a draft with an
uploaded record, a general thread and the provider's notifications. ``World.path_ids`` maps each
path parameter of the API to the id of practice A's object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from messaging import services as messaging_services
from messaging.models import Message, MessageAttachment, Thread, ThreadReadState
from portal.crypto.models import EncryptedFile
from portal.notifications.models import Notification
from portal.notifications.services import notify
from referrals import services as referral_services
from referrals.models import Attachment, Patient, Referral, ReferralStatus
from reports.models import ProgressReport
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.reports.test_api_access import State as OutcomeState
from tests.reports.test_api_access import build_setup

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def pdf_upload(name: str = "evaluation.pdf", data: bytes = PDF_BYTES) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/pdf")


@dataclass(frozen=True)
class World:
    cast: Cast
    referral: Referral
    draft: Referral
    unsigned_report: ProgressReport
    report: ProgressReport
    thread: Thread
    general_thread: Thread
    message: Message
    message_attachment: MessageAttachment
    attachment: Attachment
    notification: Notification

    def path_ids(self, path: str) -> dict[str, str]:
        """Practice A's object for each path parameter of ``path`` (an OpenAPI path template).

        Edits and uploads go to the draft (the referral in treatment refuses them); everything
        else to the referral in treatment, which has data behind every sub-resource."""
        editing = path.endswith(("/attachments/", "/sign-off/", "/submit/", "/cancel/")) or (
            path == "/api/v1/referrals/{referral_id}/"
        )
        attachment = (
            self.message_attachment if path.startswith("/api/v1/message-") else self.attachment
        )
        return {
            "referral_id": str((self.draft if editing else self.referral).public_id),
            "report_id": str(self.report.public_id),
            "thread_id": str(self.thread.public_id),
            "message_id": str(self.message.public_id),
            "attachment_id": str(attachment.public_id),
            "notification_id": str(self.notification.public_id),
        }


def everything() -> tuple[Any, ...]:
    """Every row a refused or denied write could have touched: referrals (status, timestamps),
    patients, trials, events, attachments, allowed audit events, notifications, e-mails, outcomes,
    reports, stored files, messages, threads and read positions."""
    return (
        OutcomeState.take(),
        list(Patient.objects.order_by("pk").values_list("pk", "updated_at")),
        list(Message.objects.order_by("pk").values_list("pk", "retracted_at")),
        list(Thread.objects.order_by("pk").values_list("pk", "last_sequence", "updated_at")),
        list(ThreadReadState.objects.order_by("pk").values_list("pk", "last_read_sequence")),
        list(Notification.objects.order_by("pk").values_list("pk", "read_at")),
        MessageAttachment.objects.count(),
        EncryptedFile.objects.count(),
    )


def build_world(cast: Cast) -> World:
    provider = cast.user("provider")
    setup = build_setup(cast)
    draft = referral_in_state(cast, ReferralStatus.DRAFT)
    attachment = referral_services.attachment_upload(
        actor=provider, referral=draft, uploaded_file=pdf_upload()
    )
    thread = messaging_services.referral_thread_ensure(referral=setup.referral)
    message = messaging_services.message_send(
        actor=provider,
        thread=thread,
        body="The latest evaluation is attached.",
        attachments=[pdf_upload("letter.pdf")],
    )
    messaging_services.message_send(
        actor=cast.user("coordinator"), thread=thread, body="Thank you, received."
    )
    general_thread = messaging_services.thread_create(
        actor=provider, subject="Scheduling question", body="Can we move Tuesday's consult?"
    )
    notification = notify(
        recipients=[provider],
        event="referral.accepted",
        reference=setup.referral.number,
        link=f"/referrals/{setup.referral.public_id}/",
    )[0]
    return World(
        cast=cast,
        referral=setup.referral,
        draft=draft,
        unsigned_report=setup.unsigned,
        report=setup.signed,
        thread=thread,
        general_thread=general_thread,
        message=message,
        message_attachment=message.attachments.get(),
        attachment=attachment,
        notification=notification,
    )
