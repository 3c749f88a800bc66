"""Attachments: upload checks (type by content, size, malware), encrypted storage, download."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.http import StreamingHttpResponse

from portal.audit.models import AuditEvent
from referrals.models import Attachment
from tests.personas import Cast
from tests.referrals.factories import referral_in_state
from tests.referrals.helpers import Snapshot, api_client
from tests.scanners import EICAR

MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _file(data: bytes, name: str) -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = name
    return upload


def _upload(cast: Cast, referral_id: Any, upload: Any, persona: str = "provider") -> Any:
    return api_client(cast, persona).post(
        f"/api/v1/referrals/{referral_id}/attachments/", {"file": upload}, format="multipart"
    )


def test_upload_stores_encrypted_and_download_returns_the_same_bytes(cast: Cast) -> None:
    referral = referral_in_state(cast, "draft")

    response = _upload(cast, referral.public_id, _file(MINIMAL_PDF, "Evaluation 2026.pdf"))

    assert response.status_code == 201, response.content
    body = response.json()
    attachment = Attachment.objects.get(public_id=body["id"])
    assert body["original_name"] == "Evaluation 2026.pdf"
    assert (body["content_type"], body["size"]) == ("application/pdf", len(MINIMAL_PDF))
    assert body["sha256"] == hashlib.sha256(MINIMAL_PDF).hexdigest() == attachment.sha256
    assert body["download_url"] == f"/api/v1/attachments/{attachment.public_id}/download/"
    stored = Path(settings.MEDIA_ROOT) / "encrypted" / attachment.stored_name
    assert MINIMAL_PDF not in stored.read_bytes()
    assert referral.events.filter(kind="attachment_added").count() == 1
    assert (
        AuditEvent.objects.filter(
            action="referral.attachment_uploaded", object_id=str(attachment.public_id)
        ).count()
        == 1
    )

    download = api_client(cast, "staff").get(body["download_url"])

    assert download.status_code == 200
    assert isinstance(download, StreamingHttpResponse)
    assert b"".join(download.streaming_content) == MINIMAL_PDF
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == 'attachment; filename="Evaluation 2026.pdf"'
    assert "no-store" in download["Cache-Control"]
    assert (
        AuditEvent.objects.filter(
            action="attachment.read", object_id=str(attachment.public_id), actor=cast.user("staff")
        ).count()
        == 1
    )

    listed = api_client(cast, "provider").get(
        f"/api/v1/referrals/{referral.public_id}/attachments/"
    )
    assert [row["id"] for row in listed.json()["results"]] == [str(attachment.public_id)]


@pytest.mark.parametrize(
    ("data", "name", "status", "code"),
    [
        (b"MZ\x90\x00" + b"\x00" * 64, "setup.exe", 415, "unsupported_type"),
        (b"<html><script>alert(1)</script></html>", "notes.txt", 415, "active_content"),
        (b"just text", "scan.pdf", 415, "type_mismatch"),
        (b"", "empty.txt", 400, "empty_file"),
        (b"report " + EICAR, "report.txt", 400, "malware_detected"),
    ],
)
def test_refused_uploads_leave_nothing(
    cast: Cast, data: bytes, name: str, status: int, code: str
) -> None:
    referral = referral_in_state(cast, "draft")
    before = Snapshot.take()

    response = _upload(cast, referral.public_id, _file(data, name))

    assert response.status_code == status
    assert response.json()["code"] == code
    assert Snapshot.take() == before
    assert not (Path(settings.MEDIA_ROOT) / "encrypted").exists() or not any(
        (Path(settings.MEDIA_ROOT) / "encrypted").rglob("*")
    )


def test_an_oversized_upload_is_413(cast: Cast, settings: Any) -> None:
    settings.PORTAL_UPLOAD_MAX_BYTES = 1024
    settings.PORTAL_UPLOAD_MAX_REQUEST_BYTES = 4096
    referral = referral_in_state(cast, "draft")
    before = Snapshot.take()

    response = _upload(cast, referral.public_id, _file(b"a" * 2048, "big.txt"))

    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert Snapshot.take() == before


def test_an_upload_without_a_file_is_400(cast: Cast) -> None:
    referral = referral_in_state(cast, "draft")
    response = api_client(cast, "provider").post(
        f"/api/v1/referrals/{referral.public_id}/attachments/", {"note": "x"}, format="multipart"
    )
    assert response.status_code == 400


def test_uploads_wait_for_an_editable_state(cast: Cast) -> None:
    referral = referral_in_state(cast, "accepted")
    before = Snapshot.take()

    response = _upload(cast, referral.public_id, _file(b"notes", "notes.txt"))

    assert response.status_code == 409
    assert response.json()["code"] == "not_editable"
    assert Snapshot.take() == before


def test_a_tampered_file_is_not_sent(cast: Cast) -> None:
    referral = referral_in_state(cast, "draft")
    body = _upload(cast, referral.public_id, _file(b"evaluation notes\n", "notes.txt")).json()
    attachment = Attachment.objects.get(public_id=body["id"])
    stored = Path(settings.MEDIA_ROOT) / "encrypted" / attachment.stored_name
    data = bytearray(stored.read_bytes())
    data[-20] ^= 0x01
    stored.write_bytes(bytes(data))

    response = api_client(cast, "provider").get(body["download_url"])

    assert response.status_code == 500
    assert response.json()["code"] == "attachment_unavailable"
    assert b"evaluation" not in response.content


def test_a_hash_mismatch_is_not_sent(cast: Cast) -> None:
    referral = referral_in_state(cast, "draft")
    body = _upload(cast, referral.public_id, _file(b"evaluation notes\n", "notes.txt")).json()
    Attachment.objects.filter(public_id=body["id"]).update(sha256="0" * 64)

    response = api_client(cast, "provider").get(body["download_url"])

    assert response.status_code == 500
    assert b"evaluation" not in response.content
