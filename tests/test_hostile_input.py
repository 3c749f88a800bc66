"""Hostile input at the API: every case gets a 4xx with ``{"detail", "code"}`` and changes nothing.

"Nothing" is checked over every table a write could touch (referrals, patients, trials, events,
attachments, messages, threads, outcomes, reports, stored files, allowed audit events,
notifications, e-mail deliveries) and over the tasks enqueued on commit.

Covered: malformed JSON (including nesting deep enough to exhaust the decoder's recursion),
wrong content types, bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and files over the upload limits,
control characters and invalid Unicode in every text field of referral create/patch and message
send (valid Unicode is stored exactly), HTML and script in referral and message text (escaped in
the pages, whose CSP forbids inline script), path tricks in upload names, polyglot files, and
out-of-range, overflowing and mistyped scores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from messaging import services as messaging_services
from messaging.models import Message, MessageAttachment, Thread
from portal.audit.models import AuditEvent
from referrals.models import Attachment, Referral, ReferralStatus
from tests.personas import Cast
from tests.portal.multipart import MULTIPART, multipart_body
from tests.referrals.factories import referral_in_state
from tests.referrals.helpers import api_client, enqueued
from tests.scanners import EICAR
from tests.world import PDF_BYTES, everything, pdf_upload

pytestmark = pytest.mark.django_db

PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81"
    b"\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)
SCRIPT = "<script>alert('owned')</script><img src=x onerror=alert(1)>"
ESCAPED_SCRIPT = (
    "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # Argon2 is what production uses; the cast's passwords only need to exist here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass(frozen=True)
class Target:
    """A draft to edit, a thread to write in and a referral in treatment for the clinic."""

    draft: Referral
    thread: Thread
    in_treatment: Referral

    @property
    def patch(self) -> str:
        return f"/api/v1/referrals/{self.draft.public_id}/"

    @property
    def send(self) -> str:
        return f"/api/v1/threads/{self.thread.public_id}/messages/"

    @property
    def upload(self) -> str:
        return f"/api/v1/referrals/{self.draft.public_id}/attachments/"


CREATE = "/api/v1/referrals/"
THREADS = "/api/v1/threads/"


@pytest.fixture
def target(cast: Cast) -> Target:
    submitted = referral_in_state(cast, ReferralStatus.SUBMITTED)
    return Target(
        draft=referral_in_state(cast, ReferralStatus.DRAFT),
        thread=messaging_services.referral_thread_ensure(referral=submitted),
        in_treatment=referral_in_state(cast, ReferralStatus.IN_TREATMENT),
    )


@pytest.fixture
def refused(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> Callable[..., dict[str, Any]]:
    """``refused(call, status, code)`` makes the call and asserts the refusal changed nothing."""

    def check(call: Callable[[], Any], status: int, code: str | None = None) -> dict[str, Any]:
        before = everything()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = call()
        assert response.status_code == status, (status, response.status_code, response.content)
        assert response["Content-Type"] == "application/json", response.content[:200]
        body: dict[str, Any] = response.json()
        assert set(body) >= {"detail", "code"}, body
        if code is not None:
            assert body["code"] == code, body
        assert everything() == before
        assert enqueued(callbacks) == []
        return body

    return check


def _raw(client: APIClient, method: str, path: str, body: bytes, content_type: str) -> Any:
    # Django sends bytes as they are (invalid UTF-8 included); the stub names str only.
    return client.generic(method, path, body, content_type=content_type)  # type: ignore[arg-type]


# --- malformed JSON ------------------------------------------------------------------------------

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000

MALFORMED = [
    (b'{"reason": "unterminated"', "parse_error"),
    (b'{"reason": "x"} trailing', "parse_error"),
    (b'{"reason": "x",}', "parse_error"),
    (b"{'reason': 'single quotes'}", "parse_error"),
    (b'{"phq9_answers": [NaN, 1, 1, 1, 1, 1, 1, 1, 1]}', "parse_error"),
    (b'{"episode_months": Infinity}', "parse_error"),
    (b'\xff\xfe{"reason": "x"}', "parse_error"),
    (b'\xef\xbb\xbf{"reason": "x"}', "parse_error"),
    (DEEP_ARRAY, "parse_error"),
    (DEEP_OBJECT, "parse_error"),
    (b'{"reason": ' + DEEP_ARRAY + b"}", "parse_error"),
    (b"[1, 2]", "invalid"),
    (b'"a string"', "invalid"),
    (b"null", "invalid"),
    (b"42", "invalid"),
]


@pytest.mark.parametrize(("body", "code"), MALFORMED, ids=lambda value: repr(value)[:40])
def test_malformed_json_is_refused_everywhere(
    cast: Cast, target: Target, refused: Any, body: bytes, code: str
) -> None:
    provider = api_client(cast, "provider")
    calls = {
        "create": lambda: _raw(provider, "POST", CREATE, body, "application/json"),
        "patch": lambda: _raw(provider, "PATCH", target.patch, body, "application/json"),
        "send": lambda: _raw(provider, "POST", target.send, body, "application/json"),
        "thread": lambda: _raw(provider, "POST", THREADS, body, "application/json"),
    }
    for call in calls.values():
        refused(call, 400, code)


def test_deep_json_does_not_break_the_sign_in_api(cast: Cast) -> None:
    """allauth's headless views parse JSON themselves; a decoder exhausted there is a 400 too."""
    response = Client().generic(
        "POST", "/_allauth/app/v1/auth/login", DEEP_ARRAY, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


# --- content types -------------------------------------------------------------------------------

JSON_BODY = json.dumps({"reason": "x", "body": "x"}).encode()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "text/html",
        "application/octet-stream",
        "application/json-patch+json",
    ],
)
def test_a_body_that_is_not_json_is_refused(
    cast: Cast, target: Target, refused: Any, content_type: str
) -> None:
    provider = api_client(cast, "provider")
    for method, path in (("POST", CREATE), ("PATCH", target.patch), ("POST", target.send)):
        refused(
            lambda method=method, path=path: _raw(provider, method, path, JSON_BODY, content_type),
            415,
            "unsupported_media_type",
        )


def test_multipart_is_refused_where_only_json_is_read(
    cast: Cast, target: Target, refused: Any
) -> None:
    provider = api_client(cast, "provider")
    for method, path in (("post", CREATE), ("patch", target.patch)):
        refused(
            lambda method=method, path=path: getattr(provider, method)(
                path, {"reason": "Sent as a form."}, format="multipart"
            ),
            415,
            "unsupported_media_type",
        )


def test_an_upload_must_be_multipart(cast: Cast, target: Target, refused: Any) -> None:
    provider = api_client(cast, "provider")
    refused(
        lambda: _raw(provider, "POST", target.upload, PDF_BYTES, "application/pdf"),
        415,
        "unsupported_media_type",
    )


# --- size ----------------------------------------------------------------------------------------


def test_a_json_body_over_the_memory_limit_is_a_413(
    cast: Cast, target: Target, refused: Any
) -> None:
    text = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    provider = api_client(cast, "provider")
    for method, path, body in (
        ("POST", CREATE, {"reason": text}),
        ("PATCH", target.patch, {"reason": text}),
        ("POST", target.send, {"body": text}),
    ):
        payload = json.dumps(body).encode()
        refused(
            lambda method=method, path=path, payload=payload: _raw(
                provider, method, path, payload, "application/json"
            ),
            413,
            "request_too_large",
        )


def test_text_over_its_field_limit_is_refused(cast: Cast, target: Target, refused: Any) -> None:
    provider = api_client(cast, "provider")
    for path, method, body in (
        (CREATE, "post", {"reason": "x" * 5001}),
        (target.patch, "patch", {"allergies": "x" * 2001}),
        (target.patch, "patch", {"patient": {"given_name": "x" * 101}}),
        (target.send, "post", {"body": "x" * 20_001}),
        (THREADS, "post", {"subject": "x" * 201, "body": "Hello."}),
        (target.patch, "patch", {"phq9_answers": [1] * 100_000}),
        (target.patch, "patch", {"diagnosis_codes": ["F33.2"] * 10_000}),
        (target.patch, "patch", {"prior_trials": [{"drug": "x"}] * 1_000}),
    ):
        refused(
            lambda path=path, method=method, body=body: getattr(provider, method)(
                path, body, format="json"
            ),
            400,
            "invalid",
        )


def test_a_file_over_the_upload_limit_is_a_413(cast: Cast, target: Target, refused: Any) -> None:
    too_big = PDF_BYTES + b"0" * (settings.PORTAL_UPLOAD_MAX_BYTES + 1 - len(PDF_BYTES))
    provider = api_client(cast, "provider")
    refused(
        lambda: provider.post(
            target.upload, {"file": pdf_upload("big.pdf", too_big)}, format="multipart"
        ),
        413,
        "file_too_large",
    )
    refused(
        lambda: provider.post(
            target.send,
            {"body": "Big file.", "attachments": [pdf_upload("big.pdf", too_big)]},
            format="multipart",
        ),
        413,
        "file_too_large",
    )


def test_files_over_the_request_limit_together_are_a_413(
    cast: Cast, target: Target, refused: Any, settings: Any
) -> None:
    # Each file fits; the five together do not. Small limits keep the test quick.
    settings.PORTAL_UPLOAD_MAX_BYTES = 64 * 1024
    settings.PORTAL_UPLOAD_MAX_REQUEST_BYTES = 128 * 1024
    each = PDF_BYTES.replace(b"\n", b"\n%" + b"0" * (60 * 1024) + b"\n", 1)  # a long comment
    files = [pdf_upload(f"part-{number}.pdf", each) for number in range(5)]
    provider = api_client(cast, "provider")

    body = refused(
        lambda: provider.post(
            target.send, {"body": "Five files.", "attachments": files}, format="multipart"
        ),
        413,
        "file_too_large",
    )

    assert body["detail"] == "The files in this request are larger than the upload limit together."


# --- text fields: control characters and Unicode ------------------------------------------------

#: Every free-text field of referral create and patch, as (path into the body, nested body).
REFERRAL_TEXT_FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "patient.given_name": lambda value: {"patient": {"given_name": value}},
    "patient.family_name": lambda value: {"patient": {"family_name": value}},
    "patient.phone": lambda value: {"patient": {"phone": value}},
    "patient.email": lambda value: {"patient": {"email": value}},
    "reason": lambda value: {"reason": value},
    "diagnosis_codes.0": lambda value: {"diagnosis_codes": [value]},
    "prior_trials.0.drug": lambda value: {"prior_trials": [{"drug": value}]},
    "current_medications": lambda value: {"current_medications": value},
    "allergies": lambda value: {"allergies": value},
    "insurance.payer": lambda value: {"insurance": {"payer": value}},
    "insurance.member_id": lambda value: {"insurance": {"member_id": value}},
    "insurance.group_number": lambda value: {"insurance": {"group_number": value}},
}
MESSAGE_TEXT_FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "message.body": lambda value: {"body": value},
    "thread.subject": lambda value: {"subject": value, "body": "Hello."},
    "thread.body": lambda value: {"subject": "Hello", "body": value},
}

#: Refused in any text field: NUL (PostgreSQL cannot store it in text), other control characters
#: (terminal escapes, bells, form feeds), and lone surrogates (not encodable as UTF-8).
CONTROL_VALUES = [
    "Dana\x00Example",
    "\x00",
    "bell\x07",
    "\x1b[31mred\x1b[0m",
    "back\x08space",
    "vertical\x0btab",
    "delete\x7f",
    "next line\x85",
    "C1\x9b31m",
]
SURROGATES = ["\\ud800", "x\\udfffx", "\\udbff\\udbff"]


def _json_with_raw(body: dict[str, Any], raw: str) -> bytes:
    """``body`` as JSON with the placeholder string replaced by a raw JSON escape (a lone
    surrogate cannot be encoded from Python)."""
    return json.dumps(body).replace('"@RAW@"', f'"{raw}"').encode()


def _text_calls(
    client: APIClient, target: Target, field: str, body: dict[str, Any] | bytes
) -> list[Callable[[], Any]]:
    def send(method: str, path: str) -> Callable[[], Any]:
        if isinstance(body, bytes):
            return lambda: _raw(client, method, path, body, "application/json")
        return lambda: client.generic(method, path, json.dumps(body), "application/json")

    if field == "message.body":
        return [send("POST", target.send)]
    if field.startswith("thread."):
        return [send("POST", THREADS)]
    return [send("POST", CREATE), send("PATCH", target.patch)]


ALL_TEXT_FIELDS = {**REFERRAL_TEXT_FIELDS, **MESSAGE_TEXT_FIELDS}


@pytest.mark.parametrize("field", ALL_TEXT_FIELDS)
def test_control_characters_and_lone_surrogates_are_refused_in_every_text_field(
    cast: Cast, target: Target, refused: Any, field: str
) -> None:
    provider = api_client(cast, "provider")
    build = ALL_TEXT_FIELDS[field]
    for value in CONTROL_VALUES:
        for call in _text_calls(provider, target, field, build(value)):
            refused(call, 400, "invalid")
    for raw in SURROGATES:
        for call in _text_calls(provider, target, field, _json_with_raw(build("@RAW@"), raw)):
            refused(call, 400, "invalid")


def test_a_nul_byte_gets_the_null_character_message(cast: Cast, refused: Any) -> None:
    body = refused(
        lambda: api_client(cast, "provider").post(
            CREATE, {"reason": "two\x00parts"}, format="json"
        ),
        400,
        "invalid",
    )

    assert body["detail"] == {"reason": ["Null characters are not allowed."]}


#: Text people write in a clinic's languages and on phones: stored and read back exactly.
UNICODE_TEXT = (
    "José Ñúñez-O'Brien · 李小龍 · مرحبا بالعالم · שלום · Ελληνικά · हिन्दी\n"
    "e\u0301 (combining accent), \u200d\u200c zero-width joiners,"
    " \u202eright-to-left override\u202c, \ufeff byte-order mark,"
    " \U0001d518\U0001d52b (mathematical letters) and emoji \U0001f9d1\U0001f3fd\u200d\u2695"
    "\ufe0f\U0001f48a (astral plane), tab\there, 1e309, null"
)


def test_valid_unicode_is_stored_exactly_in_referral_and_message_text(
    cast: Cast, target: Target
) -> None:
    provider = api_client(cast, "provider")
    created = provider.post(
        CREATE,
        {
            "patient": {"given_name": "José", "family_name": "Ñúñez-李"},
            "reason": UNICODE_TEXT,
            "current_medications": UNICODE_TEXT,
            "allergies": UNICODE_TEXT,
            "prior_trials": [{"drug": UNICODE_TEXT[:200]}],
            "insurance": {"payer": "Seguro Médico 🏥", "member_id": "Ⅻ-12", "group_number": "Ω"},
        },
        format="json",
    )
    sent = provider.post(target.send, {"body": UNICODE_TEXT}, format="json")

    assert created.status_code == 201, created.content
    detail = provider.get(f"/api/v1/referrals/{created.json()['id']}/").json()
    assert detail["reason"] == UNICODE_TEXT
    assert detail["current_medications"] == UNICODE_TEXT
    assert detail["allergies"] == UNICODE_TEXT
    assert detail["prior_trials"][0]["drug"] == UNICODE_TEXT[:200]
    assert detail["patient"]["given_name"] == "José"
    assert detail["patient"]["family_name"] == "Ñúñez-李"
    assert detail["insurance"] == {
        "payer": "Seguro Médico 🏥",
        "member_id": "Ⅻ-12",
        "group_number": "Ω",
    }
    assert sent.status_code == 201, sent.content
    messages = provider.get(target.send).json()["results"]
    assert messages[-1]["body"] == UNICODE_TEXT


# --- HTML and script: stored as text, escaped in pages -------------------------------------------


def _page(cast: Cast, path: str) -> str:
    client = Client()
    client.force_login(cast.user("provider"))
    response = client.get(path)
    assert response.status_code == 200, path
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    return response.content.decode()


def _assert_escaped(html: str) -> None:
    assert ESCAPED_SCRIPT in html
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    # Every script the page loads is a file from the portal itself.
    assert re.findall(r"<script(?![^>]*\bsrc=\"/static/)[^>]*>", html) == []


def test_script_in_referral_text_is_stored_as_text_and_escaped_on_the_page(cast: Cast) -> None:
    provider = api_client(cast, "provider")
    created = provider.post(
        CREATE,
        {
            "patient": {"given_name": SCRIPT[:100], "family_name": "Example"},
            "reason": SCRIPT,
            "allergies": SCRIPT,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["reason"] == SCRIPT

    html = _page(cast, f"/referrals/{created.json()['id']}/")

    _assert_escaped(html)


def test_script_in_a_message_is_stored_as_text_and_escaped_on_the_thread_page(
    cast: Cast, target: Target
) -> None:
    sent = api_client(cast, "provider").post(target.send, {"body": SCRIPT}, format="json")
    assert sent.status_code == 201, sent.content
    assert sent.json()["body"] == SCRIPT

    html = _page(cast, f"/messages/{target.thread.public_id}/")

    _assert_escaped(html)


# --- uploads: names and content ------------------------------------------------------------------

INVALID_NAME = (
    "The file name is not accepted: use a plain file name, without folders or special "
    "characters, and upload it again."
)
# Sent exactly as written (tests.portal.multipart): the test clients would send basenames.
PATH_TRICKS = {
    "traversal": "../../etc/passwd",
    "traversal-with-extension": "../../etc/passwd.pdf",
    "absolute": "/etc/shadow.pdf",
    "windows-path": "C:\\Users\\x\\scan.pdf",
    "windows-traversal": "..\\..\\boot.pdf",
    "nul": "a\x00b.pdf",
    "dot-dot": "..",
    "dot": ".",
    "bidi-override": "report\u202efdp.exe.pdf",
    "newline": "line\nbreak.pdf",
    "tab": "tab\tname.pdf",
    "only-spaces": "   ",
    # Django unescapes HTML entities in names: &#47; is a slash by then.
    "entity-slash": "..&#47;..&#47;etc&#47;passwd.pdf",
    # NFKC turns these into "../": no way round the check.
    "fullwidth": "\uff0e\uff0e\uff0fpasswd.pdf",
    # A slash is a slash, markup or not.
    "markup-with-slash": "<script>alert(1)</script>.pdf",
}


def _media_files() -> set[Path]:
    return {path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()}


def _upload_call(client: APIClient, target: Target, where: str, name: str) -> Callable[[], Any]:
    """A multipart upload of a PDF named exactly ``name`` to a referral or a thread."""
    if where == "referral":
        body = multipart_body([("file", name, PDF_BYTES)])
        return lambda: _raw(client, "POST", target.upload, body, MULTIPART)
    body = multipart_body([("attachments", name, PDF_BYTES)], {"body": "See attached."})
    return lambda: _raw(client, "POST", target.send, body, MULTIPART)


@pytest.mark.parametrize("where", ["referral", "message"])
@pytest.mark.parametrize("name", PATH_TRICKS.values(), ids=PATH_TRICKS.keys())
def test_an_upload_name_with_a_path_trick_is_refused(
    cast: Cast, target: Target, refused: Any, where: str, name: str
) -> None:
    """Names are checked as the client sent them (Django's parser would have cut them down to a
    harmless-looking last component first): a path trick is a 400, and nothing is stored."""
    files_before = _media_files()
    messages_before = Message.objects.count()

    body = refused(_upload_call(api_client(cast, "provider"), target, where, name), 400)

    assert body == {"detail": INVALID_NAME, "code": "invalid_file_name"}
    assert _media_files() == files_before
    assert Message.objects.count() == messages_before


@pytest.mark.parametrize("where", ["referral", "message"])
@pytest.mark.parametrize(
    ("name", "stored_as"),
    [
        # Long is not a trick: capped at 120 characters, keeping the extension.
        ("x" * 500 + ".pdf", "x" * 116 + ".pdf"),
        # Markup without a slash is only a name: stored without its angle brackets.
        ("<img src=x onerror=alert(1)>.pdf", "_img src=x onerror=alert(1)_.pdf"),
        ("résumé 2026.pdf", "résumé 2026.pdf"),
        ("...hidden.PDF", "hidden.pdf"),
    ],
    ids=["very-long", "markup", "unicode", "leading-dots"],
)
def test_an_ordinary_upload_name_is_stored_as_a_tidy_display_name(
    cast: Cast, target: Target, where: str, name: str, stored_as: str
) -> None:
    """Legitimate names are accepted, tidied for display and for the download's
    Content-Disposition; the bytes go to the encrypted store under a random name."""
    media_root = Path(settings.MEDIA_ROOT)
    before = _media_files()
    provider = api_client(cast, "provider")

    response = _upload_call(provider, target, where, name)()

    assert response.status_code == 201, response.content
    if where == "referral":
        stored = response.json()
        assert stored["original_name"] == stored_as
        assert Attachment.objects.get(public_id=stored["id"]).original_name == stored_as
    else:
        (stored,) = response.json()["attachments"]
        assert stored["name"] == stored_as
        assert MessageAttachment.objects.get(public_id=stored["id"]).original_name == stored_as
    (added,) = _media_files() - before
    assert added.resolve().is_relative_to(media_root.resolve())
    assert stored_as not in added.name
    assert "<" not in stored_as
    disposition = provider.get(stored["download_url"])["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "/" not in disposition
    assert "<" not in disposition


def _csrf_client(cast: Cast, page: str) -> tuple[Client, str]:
    """A signed-in browser that enforces CSRF, and the form token from ``page``.

    Posting the token as a form field (no header) makes the CSRF middleware parse the body,
    before the view and outside it, as a browser's post does: names are kept as sent there too.
    """
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.user("provider"))
    response = client.get(page)
    assert response.status_code == 200, page
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert match is not None
    return client, match.group(1)


def _stored() -> tuple[Any, ...]:
    """What a page upload could leave behind. Re-showing a referral's page audits a read, so
    allowed audit events other than reads are counted (every change leaves one)."""
    return (
        everything(),
        Attachment.objects.count(),
        Message.objects.count(),
        AuditEvent.objects.filter(outcome="allowed").exclude(action__endswith=".read").count(),
        _media_files(),
    )


def _without_read_audit(state: tuple[Any, ...]) -> tuple[Any, ...]:
    outcome, *rest = state[0]
    outcome = replace(outcome, referrals=replace(outcome.referrals, allowed_audit=0))
    return ((outcome, *rest), *state[1:])


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd.pdf", "..", "report\u202efdp.exe.pdf"],
    ids=["traversal", "dot-dot", "bidi-override"],
)
def test_a_path_trick_on_the_referral_attachment_page_is_a_form_error(
    cast: Cast, target: Target, name: str
) -> None:
    page = f"/referrals/{target.draft.public_id}/edit/attachments/"
    client, token = _csrf_client(cast, page)
    before = _stored()

    response = client.post(
        page,
        multipart_body([("file", name, PDF_BYTES)], {"csrfmiddlewaretoken": token}),
        content_type=MULTIPART,
    )

    assert response.status_code == 400
    assert f'<a href="#id_file">Add a record: {INVALID_NAME}</a>' in response.content.decode()
    assert _without_read_audit(_stored()) == _without_read_audit(before)


@pytest.mark.parametrize("form", ["thread", "new-thread"])
def test_a_path_trick_on_the_message_pages_is_a_form_error(
    cast: Cast, target: Target, form: str
) -> None:
    thread = f"/messages/{target.thread.public_id}/"
    client, token = _csrf_client(cast, thread if form == "thread" else "/messages/new/")
    fields = {"csrfmiddlewaretoken": token, "body": "See attached."}
    path = f"{thread}send/"
    if form == "new-thread":
        fields["subject"] = "Records"
        path = "/messages/new/"
    before = _stored()

    response = client.post(
        path,
        multipart_body([("attachments", "../../etc/passwd.pdf", PDF_BYTES)], fields),
        content_type=MULTIPART,
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert f"<li>{INVALID_NAME}</li>" in html
    assert ('id="composer-files-errors"' if form == "thread" else "id_attachments_error") in html
    assert "passwd" not in html
    assert _stored() == before


# What a client sends when it does not know the type: the content alone decides.
UNDECLARED = "application/octet-stream"
POLYGLOT_IDS = ["pdf+html", "png+script", "html-as-pdf", "svg-as-png", "png-as-pdf", "ini"]
POLYGLOT_IDS += ["exe", "eicar"]


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("letter.pdf", PDF_BYTES + b"<html><script>alert(1)</script></html>", 415,
         "active_content"),
        ("image.png", PNG_BYTES + b"<script>alert(1)</script>", 415, "active_content"),
        ("letter.pdf", b"<html><body onload=alert(1)></body></html>", 415, "active_content"),
        ("image.png", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', 415,
         "active_content"),
        ("letter.pdf", PNG_BYTES, 415, "type_mismatch"),
        ("boot.ini", PDF_BYTES, 415, "type_mismatch"),
        ("program.exe", b"MZ\x90\x00" + b"\x00" * 64, 415, "unsupported_type"),
        # A well-formed PDF carrying the anti-virus test string: the (fake) scanner refuses it.
        ("letter.pdf", PDF_BYTES + EICAR, 400, "malware_detected"),
    ],
    ids=POLYGLOT_IDS,
)  # fmt: skip
def test_polyglot_and_disguised_files_are_refused(
    cast: Cast, target: Target, refused: Any, name: str, data: bytes, status: int, code: str
) -> None:
    provider = api_client(cast, "provider")

    refused(
        lambda: provider.post(
            target.upload,
            {"file": SimpleUploadedFile(name, data, content_type=UNDECLARED)},
            format="multipart",
        ),
        status,
        code,
    )
    refused(
        lambda: provider.post(
            target.send,
            {
                "body": "See attached.",
                "attachments": [SimpleUploadedFile(name, data, content_type=UNDECLARED)],
            },
            format="multipart",
        ),
        status,
        code,
    )


# --- numbers: scores and measurements ------------------------------------------------------------

#: Raw JSON values that no score accepts: beyond 64 bits, negative, beyond a float, mistyped.
BAD_NUMBERS = [
    b"9223372036854775808",
    b"18446744073709551616",
    b"-1",
    b"1e309",
    b"-1e309",
    b'"3"',
    b"true",
    b"3.5",
    b"[]",
    b"{}",
]


def _with(template: str, raw: bytes) -> bytes:
    return template.encode().replace(b"@", raw)


@pytest.mark.parametrize("raw", BAD_NUMBERS, ids=lambda raw: raw.decode())
def test_bad_scores_and_measurements_are_refused(
    cast: Cast, target: Target, refused: Any, raw: bytes
) -> None:
    provider = api_client(cast, "provider")
    clinician = api_client(cast, "clinician")
    outcomes = f"/api/v1/referrals/{target.in_treatment.public_id}"
    cases = [
        (provider, "POST", CREATE, '{"phq9_answers": [@, 1, 1, 1, 1, 1, 1, 1, 1]}'),
        (provider, "PATCH", target.patch, '{"phq9_answers": [1, 1, 1, 1, 1, 1, 1, 1, @]}'),
        (provider, "PATCH", target.patch, '{"office_bp_systolic": @}'),
        (provider, "PATCH", target.patch, '{"office_heart_rate": @}'),
        (provider, "PATCH", target.patch, '{"episode_months": @}'),
        (
            clinician,
            "POST",
            f"{outcomes}/assessments/",
            '{"instrument": "phq9", "taken_at": "2026-01-05T10:00:00+00:00",'
            ' "answers": [@, 1, 1, 1, 1, 1, 1, 1, 1]}',
        ),
        (
            clinician,
            "POST",
            f"{outcomes}/assessments/",
            '{"instrument": "gad7", "taken_at": "2026-01-05T10:00:00+00:00",'
            ' "answers": [1, 1, 1, 1, 1, 1, @]}',
        ),
        (
            clinician,
            "POST",
            f"{outcomes}/infusions/",
            '{"started_at": "2026-01-05T10:00:00+00:00", "weight_kg": 80, "dose_mg_per_kg": 0.5,'
            ' "duration_minutes": 40, "cadss_peak": @}',
        ),
    ]
    for client, method, path, template in cases:
        refused(
            lambda client=client, method=method, path=path, template=template: _raw(
                client, method, path, _with(template, raw), "application/json"
            ),
            400,
        )
