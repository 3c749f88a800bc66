"""Seed a benchmark database with a realistic volume, quickly (``make bench``, step 1).

Run by ``bench/make_bench.py`` in its own process, against a freshly migrated database named by
DATABASE_URL, with the same throw-away keys the portal is then started with::

    python -m bench.seed --referrals 20000 --messages 500000 --reports 5000 --plan plan.json

What it writes, and how:

* Rows go in with PostgreSQL ``COPY`` (psycopg's ``Cursor.copy``), one model at a time, ids
  assigned here (so foreign keys need no look-ups) and the id sequences reset afterwards. Nothing
  is disabled: every index, constraint and trigger (the audit trail's append-only triggers
  included) is in place while the rows arrive.
* Every encrypted column holds a real ``v1.`` envelope token, made by the model field's own code
  (``EncryptedField.to_plaintext`` and ``associated_data_for``, then ``encrypt_text``), bound to
  its row's ``public_id`` exactly as ``Model.save()`` binds it. A read-back check at the end
  decrypts a sample through the ORM. Blind indexes, TOTP seeds (through the MFA adapter's
  ``encrypt``) and report PDFs (``store_encrypted_file``) go through the production code too.
* Audit: seeding writes no per-row audit events (services write one per change; replaying them
  for history adds nothing to what the load measures); one ``bench.seeded`` event records the
  seeding itself.
* Reports: ``--pdf-reports`` of them are ``ready`` with a PDF rendered from their own snapshot by
  the production renderer and stored encrypted (signed ones also with their signed PDF). Rendering
  takes 40-60 ms per PDF here, so the other rows are seeded as ``failed`` generations (no file):
  rows for the table's size, never served. Infusion sessions and assessments are not seeded (no
  endpoint in the load reads them); the snapshots carry synthetic outcomes.
* Not seeded: in-app notifications and e-mail outbox history, session history.
* Afterwards ``VACUUM (ANALYZE)``, as autovacuum would have done on a database in service.

The plan file (JSON, mode 0600) tells the load client who its virtual users are: e-mail, TOTP
secret, role, and the ids each may use (visible referrals and threads, reports with a PDF,
complete drafts to submit, referrals in review to accept, and a thread of its own for the bare
save baseline).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TextIO, TypeVar
from zoneinfo import ZoneInfo

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402 - settings must be chosen first

django.setup()

from allauth.account.models import EmailAddress  # noqa: E402 - needs django.setup()
from allauth.mfa.models import Authenticator  # noqa: E402
from allauth.mfa.totp.internal.auth import generate_totp_secret  # noqa: E402
from allauth.mfa.utils import encrypt as mfa_encrypt  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management.color import no_style  # noqa: E402
from django.db import connection, connections, models, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from messaging.models import (  # noqa: E402
    AuthorSide,
    Message,
    MessageKind,
    Thread,
    ThreadKind,
    ThreadNumberSequence,
    ThreadReadState,
)
from portal.accounts.models import Membership, Organization, Role, User  # noqa: E402
from portal.audit.services import audit_record  # noqa: E402
from portal.crypto.blind_index import patient_blind_index  # noqa: E402
from portal.crypto.fields import EncryptedField  # noqa: E402
from portal.crypto.keys import blind_index_key  # noqa: E402
from portal.crypto.storage import store_encrypted_file  # noqa: E402
from portal.crypto.values import encrypt_text  # noqa: E402
from referrals.models import (  # noqa: E402
    EventKind,
    Patient,
    PriorTrial,
    Referral,
    ReferralEvent,
    ReferralNumberSequence,
)
from referrals.models import ReferralStatus as S  # noqa: E402
from reports.content import (  # noqa: E402
    SNAPSHOT_FORMAT,
    TEMPLATE_VERSION,
    build_report_input,
    compute_summary,
    report_reference,
    snapshot_hash,
)
from reports.models import ProgressReport, ReportKind, ReportStatus  # noqa: E402
from reports.rendering.data import Interpretation  # noqa: E402
from reports.rendering.pdf import render_pdf  # noqa: E402
from reports.services import REPORT_FILE_PURPOSE, signed_file_owner  # noqa: E402

Row = dict[str, Any]

CLINIC_ROLES_MIX = ((Role.COORDINATOR, 10), (Role.CLINICIAN, 7), (Role.CLINIC_ADMIN, 3))
PROVIDERS_PER_PRACTICE = 4
GENERAL_THREADS_PER_REFERRAL = 1 / 40
LONG_THREAD_SHARE = 1 / 1000  # "a few long": one thread in a thousand holds 1,000-4,000
HISTORY_DAYS = 730
VISIBLE_SAMPLE = 40  # ids handed to each virtual user per kind


def _words(text: str) -> list[str]:
    return text.split()


GIVEN_NAMES = _words(
    "Dana Alex Jordan Morgan Taylor Casey Riley Jamie Avery Quinn Harper Rowan Skyler "
    "Emerson Maria Jose Wei Aisha Omar Priya Ivan Sofia Mateo Leila Noah Grace Ethan Chloe "
    "Lucas Zoe"
)
FAMILY_NAMES = _words(
    "Example Rivera Chen Okafor Novak Patel Schmidt Haddad Kowalski Nguyen Garcia Johansson "
    "Moreau Silva Tanaka Brooks Fischer Costa Murphy Dubois Ahmed Larsen Rossi Kim Walker"
)
STAFF_FIRST = _words(
    "Ava Ben Cara Dev Eli Fay Gus Hana Ian Jo Kai Lia Max Nia Oto Pia Rex Sia Tom Uma"
)
DRUGS = (
    "sertraline",
    "escitalopram",
    "fluoxetine",
    "venlafaxine XR",
    "duloxetine",
    "bupropion XL",
    "mirtazapine",
    "vortioxetine",
    "aripiprazole augmentation",
    "lithium augmentation",
)
MEDICATIONS = (
    "bupropion XL 300 mg daily",
    "sertraline 200 mg daily; trazodone 50 mg at night",
    "venlafaxine XR 225 mg daily",
    "escitalopram 20 mg daily; lorazepam 0.5 mg as needed",
    "none",
    "lamotrigine 200 mg daily; quetiapine 100 mg at night",
)
PAYERS = ("Florida Blue", "Aetna", "Cigna", "UnitedHealthcare", "Medicare", "self-pay")
REASONS = (
    "Recurrent major depression with two failed adequate trials; requesting ketamine evaluation.",
    "Treatment-resistant depression after three antidepressant trials and augmentation.",
    "Persistent severe depressive symptoms despite adequate pharmacotherapy and psychotherapy.",
    "Bipolar depression, mood stabiliser in place, inadequate response to two trials.",
)
MESSAGE_TEXTS = (
    "Could the patient be seen this week? The family is asking about the first appointment.",
    "Thanks, the latest psychiatric evaluation is attached to the referral now.",
    "We reviewed the history; please confirm the current blood pressure readings.",
    "The consult is booked. Please ask the patient to arrange a driver for the day.",
    "PHQ-9 improved from 21 to 12 after four infusions; no adverse events so far.",
    "Patient reports mild dissociation during the last session, resolved within the hour.",
    "Could you send the medication list again? The copy we received is cut off.",
    "Noted. We will share the interim progress report after the sixth infusion.",
    "Insurance pre-authorisation came back approved for the induction series.",
    "The patient asked whether they can continue bupropion during treatment.",
)
SYSTEM_TEXTS = (
    "Picked up for review by the care coordinator.",
    "Accepted by the care coordinator.",
    "Consult scheduled.",
    "Treatment started (recorded by the clinician).",
    "Progress report ready for clinician review.",
)


# --- progress ------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (a line per quarter when stderr is not a terminal)."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.total = max(total, 1)
        self.count = 0
        self.stream = stream
        self.started = time.perf_counter()
        self.last_shown = 0.0
        self.tty = stream.isatty()
        self.next_quarter = 0.25

    def advance(self, count: int = 1) -> None:
        self.count += count
        now = time.perf_counter()
        if self.tty and now - self.last_shown >= 0.25:
            self.last_shown = now
            self._show("\r")
        elif not self.tty and self.count / self.total >= self.next_quarter:
            while self.count / self.total >= self.next_quarter:
                self.next_quarter += 0.25
            self._show("")

    def _show(self, prefix: str) -> None:
        share = min(self.count / self.total, 1.0)
        bar = "#" * int(share * 24)
        elapsed = time.perf_counter() - self.started
        line = (
            f"{prefix}  {self.label:<22} [{bar:<24}] {self.count:>9,}/{self.total:,} "
            f"{share:4.0%} {elapsed:6.1f} s"
        )
        self.stream.write(line if self.tty else line + "\n")
        self.stream.flush()

    def done(self) -> float:
        elapsed = time.perf_counter() - self.started
        finished_line_shown = not self.tty and self.next_quarter > 1.0
        self.count = self.total
        if not finished_line_shown:
            self._show("\r" if self.tty else "")
        if self.tty:
            self.stream.write("\n")
        return elapsed


# --- COPY with the models' own field code ---------------------------------------------------------

Converter = Callable[[Row], Any]


def _converter(model_field: models.Field[Any, Any]) -> Converter:
    attname = model_field.attname
    if isinstance(model_field, EncryptedField):
        encrypted = model_field

        def seal(row: Row) -> str | None:
            value = row.get(attname, encrypted.get_default())
            if value is None:
                return None
            # What EncryptedField.seal does on save: the field's plaintext form, bound to the row.
            return encrypt_text(
                encrypted.to_plaintext(value),
                associated_data=encrypted.associated_data_for(str(row["public_id"])),
            )

        return seal
    if isinstance(model_field, models.JSONField):

        def as_json(row: Row) -> Jsonb:
            return Jsonb(row[attname] if attname in row else model_field.get_default())

        return as_json
    if model_field.has_default() and callable(model_field.default):
        # uuid4 / timezone.now defaults must be given explicitly: a shared value would be wrong.
        def required(row: Row) -> Any:
            return row[attname]

        return required
    default = model_field.get_default()

    def plain(row: Row) -> Any:
        return row.get(attname, default)

    return plain


def copy_rows(
    model: type[models.Model], rows: Iterable[Row], progress: Progress | None = None
) -> int:
    """COPY ``rows`` (dicts by attname) into the model's table; returns how many."""
    fields = list(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(model_field.column) for model_field in fields)
    statement = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    converters = [_converter(model_field) for model_field in fields]
    written = 0
    connection.ensure_connection()
    raw = connection.connection
    if raw is None:
        raise RuntimeError("no database connection")
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([convert(row) for convert in converters])
            written += 1
            if progress is not None and written % 1000 == 0:
                progress.advance(1000)
    if progress is not None:
        progress.advance(written % 1000)
    return written


def reset_sequences(model_list: Sequence[type[models.Model]]) -> None:
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), list(model_list)):
            cursor.execute(statement)


# --- work in parallel processes -------------------------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")

# Read by the forked workers (set before the pool starts; fork copies it).
_SHARED: dict[str, Any] = {}
MESSAGES_PER_CHUNK = 10_000
INTERPRETATION = "Response after the induction series. Plan: maintenance infusions monthly."


def _chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def _in_workers(function: Callable[[list[T]], R], chunks: list[list[T]], jobs: int) -> Iterator[R]:
    """``function`` over ``chunks`` in ``jobs`` forked processes (each with its own database
    connection), results as they finish; in this process when ``jobs`` is 1."""
    if jobs <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield function(chunk)
        return
    connections.close_all()  # a forked child must open its own connection, not share this one
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap_unordered(function, chunks)


class ThreadSpec(NamedTuple):
    """What a worker needs to write one thread's messages."""

    thread_id: int
    first_id: int
    length: int
    start: datetime
    step: timedelta
    practice_id: int
    clinic_side: bool
    system_messages: bool


def _message_rows(specs: Sequence[ThreadSpec], rng: random.Random) -> Iterator[Row]:
    practice_authors: dict[int, list[int]] = _SHARED["practice_authors"]
    clinic_authors: list[int] = _SHARED["clinic_authors"]
    for spec in specs:
        authors = practice_authors[spec.practice_id]
        for sequence in range(1, spec.length + 1):
            moment = spec.start + spec.step * sequence
            row: Row = {
                "id": spec.first_id + sequence - 1,
                "public_id": uuid.uuid4(),
                "created_at": moment,
                "updated_at": moment,
                "thread_id": spec.thread_id,
                "sequence": sequence,
            }
            if spec.system_messages and sequence % 6 == 1:
                row.update(
                    kind=MessageKind.SYSTEM,
                    author_side="",
                    caused_by_id=rng.choice(clinic_authors),
                    body=rng.choice(SYSTEM_TEXTS),
                )
            else:
                from_clinic = spec.clinic_side and sequence % 2 == 0
                row.update(
                    kind=MessageKind.USER,
                    author_id=rng.choice(clinic_authors if from_clinic else authors),
                    author_side=AuthorSide.CLINIC if from_clinic else AuthorSide.PRACTICE,
                    body=" ".join(rng.sample(MESSAGE_TEXTS, rng.randint(1, 3))),
                )
            yield row


def _copy_message_chunk(specs: list[ThreadSpec]) -> int:
    rng = random.Random(specs[0].thread_id)  # noqa: S311 - synthetic data, not secrets
    with transaction.atomic():
        return copy_rows(Message, _message_rows(specs, rng))


class ReportSpec(NamedTuple):
    """One report whose PDFs a worker renders and stores."""

    row_index: int
    public_id: str
    referral_public_id: str
    referral_number: str
    provider_name: str
    start: datetime
    version: int
    kind: str
    signed: bool
    signed_at: datetime
    clinician_name: str


def _report_snapshot(spec: ReportSpec, rng: random.Random) -> dict[str, Any]:
    """A report's input snapshot in the production format (synthetic outcomes)."""
    infusions = min(2 + spec.version * 2, 6)
    totals = [rng.randint(17, 25)]
    for _ in range(infusions):
        totals.append(max(totals[-1] - rng.randint(0, 4), 2))
    start = spec.start
    return {
        "format": SNAPSHOT_FORMAT,
        "template_version": TEMPLATE_VERSION,
        "report": {
            "id": spec.public_id,
            "reference": report_reference(spec.referral_number, spec.version),
            "version": spec.version,
            "kind": spec.kind,
        },
        "referral": {"id": spec.referral_public_id, "number": spec.referral_number},
        "data_as_of": (start + timedelta(days=2 * infusions + 1)).isoformat(),
        "time_zone": settings.TIME_ZONE,
        "clinic": {"name": "Lakeside Ketamine Clinic"},
        "referring_provider": {"name": spec.provider_name},
        "patient": {"display_name": "Patient (benchmark)", "birth_year": 1984},
        "settings": {
            "response_drop_percent": 50,
            "partial_response_low_percent": 25,
            "phq9_remission_max": 4,
            "qids_remission_max": 5,
            "madrs_remission_max": 10,
            "baseline_window_days": 14,
            "bp_systolic_max": 140,
            "bp_diastolic_max": 90,
            "infusions_planned": 6,
            "primary_instrument": "phq9",
        },
        "infusions": [
            {
                "number": number,
                "started_at": (start + timedelta(days=2 * number)).isoformat(),
                "status": "completed",
                "status_reason": "",
                "weight_kg": "72.0",
                "dose_mg_per_kg": "0.50",
                "total_mg": "36.0",
                "duration_minutes": 40,
                "route": "iv",
                "vitals": [
                    {
                        "minute": minute,
                        "systolic": 122 + minute // 5,
                        "diastolic": 80,
                        "heart_rate": 74,
                        "spo2": 98,
                    }
                    for minute in (0, 15, 30, 45)
                ],
                "cadss_peak": rng.randint(4, 20),
                "adverse_events": [],
                "dose_change_reason": "",
                "bp_systolic_max": 140,
                "bp_diastolic_max": 90,
            }
            for number in range(1, infusions + 1)
        ],
        "assessments": [
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "instrument": "phq9",
                "total": total,
                "band": "moderate",
                "flags": [],
                "taken_at": (start + timedelta(days=2 * index - 1)).isoformat(),
            }
            for index, total in enumerate(totals)
        ],
    }


def _render_reports(specs: list[ReportSpec]) -> list[tuple[int, Row]]:
    """Render each report's PDF (and signed PDF) with the production renderer from its own
    snapshot and store it encrypted, bound to the report as the report services bind it."""
    results: list[tuple[int, Row]] = []
    for spec in specs:
        rng = random.Random(spec.public_id)  # noqa: S311 - synthetic data, not secrets
        snapshot = _report_snapshot(spec, rng)
        summary = compute_summary(snapshot)
        pdf = render_pdf(build_report_input(snapshot, summary))
        stored = store_encrypted_file(
            io.BytesIO(pdf), purpose=REPORT_FILE_PURPOSE, owner_id=spec.public_id
        )
        updates: Row = {
            "input_snapshot": snapshot,
            "input_hash": snapshot_hash(snapshot),
            "summary": summary,
            "pdf_name": stored.name,
            "pdf_size": stored.size,
            "pdf_sha256": stored.sha256,
        }
        if spec.signed:
            interpretation = Interpretation(
                text=INTERPRETATION,
                signer_name=spec.clinician_name,
                signed_at=spec.signed_at.astimezone(ZoneInfo(settings.TIME_ZONE)),
            )
            signed_pdf = render_pdf(build_report_input(snapshot, summary, interpretation))
            owner = signed_file_owner(ProgressReport(public_id=uuid.UUID(spec.public_id)))
            signed = store_encrypted_file(
                io.BytesIO(signed_pdf), purpose=REPORT_FILE_PURPOSE, owner_id=owner
            )
            updates.update(
                signed_pdf_name=signed.name,
                signed_pdf_size=signed.size,
                signed_pdf_sha256=signed.sha256,
            )
        results.append((spec.row_index, updates))
    return results


# --- the world in memory --------------------------------------------------------------------------


@dataclass
class Ids:
    """Sequential primary keys per table, from ``offset`` + 1."""

    offset: int
    counters: dict[str, int] = field(default_factory=dict)

    def next(self, table: str) -> int:
        value = self.counters.get(table, self.offset) + 1
        self.counters[table] = value
        return value


@dataclass
class Person:
    id: int
    public_id: uuid.UUID
    email: str
    full_name: str
    role: str
    organization: int
    totp_secret: str


@dataclass
class Org:
    id: int
    public_id: uuid.UUID
    name: str
    kind: str
    providers: list[Person] = field(default_factory=list)
    staff: list[Person] = field(default_factory=list)


@dataclass
class Ref:
    """A referral as the generator tracks it (only what later rows need)."""

    id: int
    public_id: uuid.UUID
    practice: Org
    provider: Person
    created_by: Person
    status: str
    created_at: datetime
    urgent: bool
    number: str = ""
    thread_id: int = 0
    thread_public_id: uuid.UUID | None = None
    reserved_for: str = ""


@dataclass
class Plan:
    """What the load client needs, written to the plan file."""

    virtual_users: list[dict[str, Any]] = field(default_factory=list)
    login_users: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Options:
    practices: int
    users: int
    referrals: int
    messages: int
    reports: int
    pdf_reports: int
    provider_vus: int
    coordinator_vus: int
    clinician_vus: int
    drafts_per_vu: int
    reviews_per_vu: int
    login_users: int
    password: str
    id_offset: int
    seed: int
    jobs: int


def _npi(rng: random.Random) -> str:
    """A 10-digit NPI with a valid check digit (Luhn over the 80840 prefix)."""
    body = "1" + "".join(str(rng.randint(0, 9)) for _ in range(8))
    for check in range(10):
        candidate = body + str(check)
        digits = "80840" + candidate
        total = 0
        for position, character in enumerate(reversed(digits)):
            value = int(character)
            if position % 2 == 1:
                value = value * 2 - 9 if value * 2 > 9 else value * 2
            total += value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable: one check digit always fits")


class Seeder:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.rng = random.Random(options.seed)  # noqa: S311 - synthetic data, not secrets
        self.ids = Ids(options.id_offset)
        self.now = timezone.now()
        self.clinic: Org | None = None
        self.practices: list[Org] = []
        self.people: list[Person] = []
        self.referrals: list[Ref] = []
        self.plan = Plan()
        self._referral_years: dict[int, int] = {}
        self._blind_key = b""
        self._baseline: dict[str, uuid.UUID] = {}
        self._report_rows: list[Row] = []

    # --- organisations and people ---------------------------------------------------------------

    def seed_people(self) -> None:
        options = self.options
        clinic = Org(self.ids.next("org"), uuid.uuid4(), "Lakeside Ketamine Clinic", "clinic")
        self.clinic = clinic
        self.practices = [
            Org(self.ids.next("org"), uuid.uuid4(), f"Practice {number:02d}", "practice")
            for number in range(1, options.practices + 1)
        ]
        clinic_count = sum(count for _, count in CLINIC_ROLES_MIX)
        practice_users = options.users - clinic_count
        if practice_users < options.practices * (PROVIDERS_PER_PRACTICE + 1):
            raise SystemExit("--users is too small for the practices and the clinic's staff")
        for role, count in CLINIC_ROLES_MIX:
            for _ in range(count):
                clinic.staff.append(self._person(clinic, role))
        for index, practice in enumerate(self.practices):
            size = practice_users // options.practices + (
                1 if index < practice_users % options.practices else 0
            )
            for position in range(size):
                role = Role.PROVIDER if position < PROVIDERS_PER_PRACTICE else Role.PRACTICE_STAFF
                person = self._person(practice, role)
                (practice.providers if role == Role.PROVIDER else practice.staff).append(person)
        progress = Progress("users (+MFA)", len(self.people))
        password_hash = make_password(options.password)  # one Argon2 hash, shared: see README
        joined = self.now - timedelta(days=HISTORY_DAYS + 30)
        with transaction.atomic():
            copy_rows(
                Organization,
                (
                    {
                        "id": org.id,
                        "public_id": org.public_id,
                        "created_at": joined,
                        "updated_at": joined,
                        "name": org.name,
                        "kind": org.kind,
                    }
                    for org in [clinic, *self.practices]
                ),
            )
            copy_rows(
                User,
                (
                    {
                        "id": person.id,
                        "public_id": person.public_id,
                        "created_at": joined,
                        "updated_at": joined,
                        "password": password_hash,
                        "email": person.email,
                        "full_name": person.full_name,
                        "date_joined": joined,
                    }
                    for person in self.people
                ),
            )
            copy_rows(
                Membership,
                (
                    {
                        "id": self.ids.next("membership"),
                        "public_id": uuid.uuid4(),
                        "created_at": joined,
                        "updated_at": joined,
                        "user_id": person.id,
                        "organization_id": person.organization,
                        "role": person.role,
                        "npi": _npi(self.rng) if person.role == Role.PROVIDER else "",
                    }
                    for person in self.people
                ),
            )
            copy_rows(
                EmailAddress,
                (
                    {
                        "id": self.ids.next("email"),
                        "user_id": person.id,
                        "email": person.email,
                        "verified": True,
                        "primary": True,
                    }
                    for person in self.people
                ),
            )
            copy_rows(
                Authenticator,
                (
                    {
                        "id": self.ids.next("authenticator"),
                        "user_id": person.id,
                        "type": Authenticator.Type.TOTP,
                        # Through the MFA adapter, as TOTP.activate stores it.
                        "data": {"secret": mfa_encrypt(person.totp_secret)},
                        "created_at": joined,
                    }
                    for person in self.people
                ),
                progress,
            )
        progress.done()

    def _person(self, org: Org, role: str) -> Person:
        index = len(self.people) + 1
        first = STAFF_FIRST[index % len(STAFF_FIRST)]
        last = FAMILY_NAMES[(index // len(STAFF_FIRST)) % len(FAMILY_NAMES)]
        domain = "clinic" if org.kind == "clinic" else f"practice{org.id - self.options.id_offset}"
        person = Person(
            id=self.ids.next("user"),
            public_id=uuid.uuid4(),
            email=f"{role.replace('_', '-')}{index:03d}@{domain}.bench.example",
            full_name=f"{'Dr ' if role in (Role.PROVIDER, Role.CLINICIAN) else ''}{first} {last}",
            role=role,
            organization=org.id,
            totp_secret=generate_totp_secret(),
        )
        self.people.append(person)
        return person

    # --- referrals ------------------------------------------------------------------------------

    def _status_for_age(self, age_days: float) -> str:
        roll = self.rng.random()
        table: Sequence[tuple[float, str]]
        if age_days < 14:
            table = (
                (0.30, S.DRAFT),
                (0.45, S.SUBMITTED),
                (0.65, S.IN_REVIEW),
                (0.75, S.INFO_REQUESTED),
                (0.88, S.ACCEPTED),
                (0.95, S.DECLINED),
                (1.00, S.CANCELLED),
            )
        elif age_days < 60:
            table = (
                (0.15, S.ACCEPTED),
                (0.45, S.SCHEDULED),
                (0.80, S.IN_TREATMENT),
                (0.90, S.DECLINED),
                (1.00, S.CANCELLED),
            )
        elif age_days < 180:
            table = (
                (0.30, S.IN_TREATMENT),
                (0.55, S.COMPLETED),
                (0.85, S.CLOSED),
                (0.93, S.DECLINED),
                (1.00, S.CANCELLED),
            )
        else:
            table = ((0.06, S.COMPLETED), (0.84, S.CLOSED), (0.93, S.DECLINED), (1.00, S.CANCELLED))
        for threshold, status in table:
            if roll < threshold:
                return status
        return table[-1][1]

    def _new_ref(
        self, practice: Org, status: str, age_days: float, provider: Person | None = None
    ) -> Ref:
        if provider is None:
            provider = self.rng.choice(practice.providers)
            # Three referrals in ten are entered by staff on the provider's behalf.
            by_staff = bool(practice.staff) and self.rng.random() < 0.3
            created_by = self.rng.choice(practice.staff) if by_staff else provider
        else:
            created_by = provider  # a virtual user's own entry: submitting is their sign-off
        ref = Ref(
            id=self.ids.next("referral"),
            public_id=uuid.uuid4(),
            practice=practice,
            provider=provider,
            created_by=created_by,
            status=status,
            created_at=self.now - timedelta(days=age_days),
            urgent=self.rng.random() < 0.03,
        )
        self.referrals.append(ref)
        return ref

    def plan_referrals(self) -> None:
        """Reserve what the virtual users act on, then fill the rest by age."""
        options = self.options
        vu_providers = self._vu_providers()
        for provider in vu_providers:
            practice = self._org(provider.organization)
            for _ in range(options.drafts_per_vu):
                ref = self._new_ref(practice, S.DRAFT, self.rng.uniform(0.2, 10), provider)
                ref.reserved_for = "submit"
            closed = self._new_ref(practice, S.CLOSED, self.rng.uniform(90, 300))
            closed.reserved_for = "report"
        for _ in range(options.coordinator_vus * options.reviews_per_vu):
            ref = self._new_ref(
                self.rng.choice(self.practices), S.IN_REVIEW, self.rng.uniform(0.5, 6)
            )
            ref.reserved_for = "accept"
        remaining = options.referrals - len(self.referrals)
        if remaining < 0:
            raise SystemExit("--referrals is too small for the virtual users' reserved rows")
        for _ in range(remaining):
            # More recent referrals than old ones (a growing clinic): age skews towards today.
            age = HISTORY_DAYS * self.rng.random() ** 1.6
            self._new_ref(
                self.rng.choice(self.practices), self._status_for_age(age), max(age, 0.05)
            )
        self.referrals.sort(key=lambda ref: ref.created_at)
        counters: dict[int, int] = {}
        for ref in self.referrals:
            year = timezone.localtime(ref.created_at).year
            counters[year] = counters.get(year, 0) + 1
            ref.number = f"R-{year}-{counters[year]:05d}"
        self._referral_years = counters

    def _org(self, org_id: int) -> Org:
        for org in self.practices:
            if org.id == org_id:
                return org
        raise KeyError(org_id)

    def _vu_providers(self) -> list[Person]:
        count = min(self.options.provider_vus, len(self.practices))
        return [practice.providers[0] for practice in self.practices[:count]]

    def _patient_row(self, ref: Ref) -> Row:
        rng = self.rng
        given = rng.choice(GIVEN_NAMES)
        family = rng.choice(FAMILY_NAMES)
        birth = f"{rng.randint(1950, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return {
            "id": ref.id,
            "public_id": uuid.uuid4(),
            "created_at": ref.created_at,
            "updated_at": ref.created_at,
            "practice_id": ref.practice.id,
            "given_name": given,
            "family_name": family,
            "birth_date": birth,
            "sex": rng.choice(("female", "male", "female", "other")),
            "phone": f"+1 407 555 {rng.randint(0, 9999):04d}",
            "email": f"{given.lower()}.{family.lower()}{rng.randint(1, 999)}@mail.example",
            "identity_index": patient_blind_index(self._blind_key, given, family, birth),
            "created_by_id": ref.created_by.id,
        }

    def _timeline(self, ref: Ref) -> list[tuple[str, str, str, Person | None, str]]:
        """(event kind, from, to, actor, note) along the referral's path to its status."""
        coordinator = self.rng.choice(self._clinic_role(Role.COORDINATOR))
        clinician = self.rng.choice(self._clinic_role(Role.CLINICIAN))
        events: list[tuple[str, str, str, Person | None, str]] = [
            (EventKind.CREATED, "", S.DRAFT, ref.created_by, "")
        ]
        status = ref.status
        if status == S.DRAFT:
            return events
        if status == S.CANCELLED and self.rng.random() < 0.3:
            events.append((EventKind.CANCELLED, S.DRAFT, S.CANCELLED, ref.provider, "Duplicate."))
            return events
        events.append((EventKind.SUBMITTED, S.DRAFT, S.SUBMITTED, ref.provider, ""))
        if status == S.SUBMITTED:
            return events
        events.append((EventKind.REVIEWED, S.SUBMITTED, S.IN_REVIEW, coordinator, ""))
        if status == S.IN_REVIEW:
            return events
        if status == S.INFO_REQUESTED:
            question = "Please send the most recent psychiatric evaluation."
            events.append(
                (EventKind.INFO_REQUESTED, S.IN_REVIEW, S.INFO_REQUESTED, coordinator, question)
            )
            return events
        if status == S.DECLINED:
            reason = "Active psychotic features; ketamine is contraindicated."
            events.append((EventKind.DECLINED, S.IN_REVIEW, S.DECLINED, coordinator, reason))
            return events
        if status == S.CANCELLED:
            events.append(
                (EventKind.CANCELLED, S.IN_REVIEW, S.CANCELLED, ref.provider, "Patient moved.")
            )
            return events
        events.append((EventKind.ACCEPTED, S.IN_REVIEW, S.ACCEPTED, coordinator, ""))
        path = (
            (S.SCHEDULED, EventKind.SCHEDULED, coordinator),
            (S.IN_TREATMENT, EventKind.TREATMENT_STARTED, clinician),
            (S.COMPLETED, EventKind.COMPLETED, clinician),
            (S.CLOSED, EventKind.CLOSED, ref.provider),
        )
        previous = S.ACCEPTED
        for target, kind, actor in path:
            if previous == status:
                break
            events.append((kind, previous, target, actor, ""))
            previous = target
        return events

    def _clinic_role(self, role: str) -> list[Person]:
        assert self.clinic is not None  # noqa: S101 - seeded first
        return [person for person in self.clinic.staff if person.role == role]

    def seed_referrals(self) -> None:
        self._blind_key = blind_index_key()
        assert self.clinic is not None  # noqa: S101 - seeded first
        clinic_id = self.clinic.id
        refs = self.referrals
        referral_rows: list[Row] = []
        trial_rows: list[Row] = []
        event_rows: list[Row] = []
        patients = Progress("patients", len(refs))
        with transaction.atomic():
            copy_rows(Patient, (self._patient_row(ref) for ref in refs), patients)
        patients.done()
        for ref in refs:
            timeline = self._timeline(ref)
            moments = self._moments(ref, len(timeline))
            submitted_at = next(
                (
                    moment
                    for (kind, *_), moment in zip(timeline, moments, strict=True)
                    if kind == EventKind.SUBMITTED
                ),
                None,
            )
            referral_rows.append(self._referral_row(ref, clinic_id, submitted_at, moments[-1]))
            for position in range(self.rng.randint(2, 4)):
                trial_rows.append(self._trial_row(ref, position))
            for (kind, source, target, actor, note), moment in zip(timeline, moments, strict=True):
                event_rows.append(
                    {
                        "id": self.ids.next("event"),
                        "public_id": uuid.uuid4(),
                        "created_at": moment,
                        "updated_at": moment,
                        "referral_id": ref.id,
                        "kind": kind,
                        "actor_id": actor.id if actor is not None else None,
                        "from_status": source,
                        "to_status": target,
                        "note": note,
                    }
                )
        self.plan.counts["prior_trials"] = len(trial_rows)
        self.plan.counts["events"] = len(event_rows)
        progress = Progress("referrals", len(referral_rows))
        with transaction.atomic():
            copy_rows(Referral, referral_rows, progress)
        progress.done()
        progress = Progress("prior trials", len(trial_rows))
        with transaction.atomic():
            copy_rows(PriorTrial, trial_rows, progress)
        progress.done()
        progress = Progress("timeline events", len(event_rows))
        with transaction.atomic():
            copy_rows(ReferralEvent, event_rows, progress)
        progress.done()
        with transaction.atomic():
            for year, last in self._referral_years.items():
                ReferralNumberSequence.objects.update_or_create(
                    year=year, defaults={"last_value": last}
                )

    def _moments(self, ref: Ref, count: int) -> list[datetime]:
        """Increasing times for the timeline, from creation towards today."""
        span = min(self.now - ref.created_at, timedelta(days=120))
        moments = [ref.created_at]
        for index in range(1, count):
            moments.append(ref.created_at + span * (index / count) * self.rng.uniform(0.8, 1.0))
        return sorted(moments)

    def _referral_row(
        self, ref: Ref, clinic_id: int, submitted_at: datetime | None, last: datetime
    ) -> Row:
        rng = self.rng
        status = ref.status
        consult_at = None
        if status == S.SCHEDULED:
            consult_at = self.now + timedelta(days=rng.uniform(1, 20))
        elif status in (S.IN_TREATMENT, S.COMPLETED, S.CLOSED):
            consult_at = ref.created_at + timedelta(days=rng.uniform(10, 25))
        answers = [rng.randint(1, 3) for _ in range(8)] + [1 if rng.random() < 0.1 else 0]
        contraindications = dict.fromkeys(
            (
                "psychosis",
                "substance_use_disorder",
                "uncontrolled_hypertension",
                "vascular_aneurysm_or_avm",
                "pregnancy",
                "ketamine_hypersensitivity",
            ),
            False,
        )
        if status == S.DECLINED:
            contraindications["psychosis"] = True
        triage_due = submitted_at + timedelta(days=2) if submitted_at is not None else None
        return {
            "id": ref.id,
            "public_id": ref.public_id,
            "created_at": ref.created_at,
            "updated_at": last,
            "number": ref.number,
            "practice_id": ref.practice.id,
            "clinic_id": clinic_id,
            "patient_id": ref.id,
            "provider_id": ref.provider.id,
            "created_by_id": ref.created_by.id,
            "status": status,
            "urgent": ref.urgent,
            "reason": rng.choice(REASONS),
            "diagnosis_codes": [rng.choice(("F33.2", "F33.1", "F32.2", "F32.1", "F31.4"))],
            "episode_months": rng.randint(3, 60),
            "current_medications": rng.choice(MEDICATIONS),
            "allergies": rng.choice(("none known", "penicillin", "sulfa drugs", "latex")),
            "office_bp_systolic": rng.randint(105, 148),
            "office_bp_diastolic": rng.randint(65, 92),
            "office_heart_rate": rng.randint(55, 100),
            "phq9_answers": answers,
            "contraindications": contraindications,
            "suicidal_intent": False,
            "insurance": {
                "payer": rng.choice(PAYERS),
                "member_id": f"XJH{rng.randint(10**8, 10**9 - 1)}",
                "group_number": f"G{rng.randint(1000, 9999)}",
            },
            "consent_attested": True,
            "provider_signed_off_at": submitted_at,
            "submitted_at": submitted_at,
            "triage_due_at": triage_due,
            "overdue_flagged_at": None,
            "decline_reason": "Active psychotic features." if status == S.DECLINED else "",
            "decline_advice": "Refer to the early psychosis service."
            if status == S.DECLINED
            else "",
            "consult_at": consult_at,
            "cancel_reason": "Patient moved out of state." if status == S.CANCELLED else "",
        }

    def _trial_row(self, ref: Ref, position: int) -> Row:
        rng = self.rng
        return {
            "id": self.ids.next("trial"),
            "public_id": uuid.uuid4(),
            "created_at": ref.created_at,
            "updated_at": ref.created_at,
            "referral_id": ref.id,
            "position": position,
            "drug": rng.choice(DRUGS),
            "max_daily_dose_mg": Decimal(rng.choice((20, 40, 150, 200, 225, 300))),
            "weeks_at_dose": Decimal(rng.randint(4, 12)),
            "adherence": rng.choice(("good", "good", "good", "partial")),
            "outcome": rng.choice(("no_response", "no_response", "partial_response")),
        }

    # --- threads and messages -------------------------------------------------------------------

    def seed_messages(self) -> None:
        """One thread per referral plus general threads; message counts are heavy-tailed."""
        assert self.clinic is not None  # noqa: S101 - seeded first
        rng = self.rng
        clinic = self.clinic
        general = max(1, round(len(self.referrals) * GENERAL_THREADS_PER_REFERRAL))
        threads: list[Row] = []
        owners: list[tuple[Org, Ref | None]] = []
        for ref in self.referrals:
            ref.thread_id = self.ids.next("thread")
            ref.thread_public_id = uuid.uuid4()
            threads.append(
                {
                    "id": ref.thread_id,
                    "public_id": ref.thread_public_id,
                    "created_at": ref.created_at,
                    "kind": ThreadKind.REFERRAL,
                    "referral_id": ref.id,
                    "number": None,
                    "practice_id": ref.practice.id,
                    "clinic_id": clinic.id,
                    "subject": f"Referral {ref.number}",
                    "created_by_id": None,
                }
            )
            owners.append((ref.practice, ref))
        general_numbers: dict[int, int] = {}
        for _ in range(general):
            practice = rng.choice(self.practices)
            created = self.now - timedelta(days=HISTORY_DAYS * rng.random())
            year = timezone.localtime(created).year
            general_numbers[year] = general_numbers.get(year, 0) + 1
            threads.append(
                {
                    "id": self.ids.next("thread"),
                    "public_id": uuid.uuid4(),
                    "created_at": created,
                    "kind": ThreadKind.GENERAL,
                    "referral_id": None,
                    "number": f"T-{year}-{general_numbers[year]:05d}",
                    "practice_id": practice.id,
                    "clinic_id": clinic.id,
                    "subject": "Scheduling question",
                    "created_by_id": rng.choice(practice.providers).id,
                }
            )
            owners.append((practice, None))
        lengths = self._thread_lengths(owners)
        baseline = self._baseline_threads(threads, owners, general_numbers)
        lengths.extend([0] * len(baseline))
        specs, read_states = self._thread_specs(threads, owners, lengths)
        with transaction.atomic():
            # Threads first and committed: the message workers insert in their own transactions.
            copy_rows(Thread, threads)
            copy_rows(ThreadReadState, read_states)
            for year, last in general_numbers.items():
                ThreadNumberSequence.objects.update_or_create(
                    year=year, defaults={"last_value": last}
                )
        _SHARED["practice_authors"] = {
            practice.id: [person.id for person in practice.providers + practice.staff]
            for practice in self.practices
        }
        _SHARED["clinic_authors"] = [
            person.id
            for person in self._clinic_role(Role.COORDINATOR) + self._clinic_role(Role.CLINICIAN)
        ]
        progress = Progress("messages", sum(lengths))
        chunks: list[list[ThreadSpec]] = [[]]
        in_chunk = 0
        for spec in specs:
            if not spec.length:
                continue
            if in_chunk >= MESSAGES_PER_CHUNK:
                chunks.append([])
                in_chunk = 0
            chunks[-1].append(spec)
            in_chunk += spec.length
        for written in _in_workers(_copy_message_chunk, chunks, self.options.jobs):
            progress.advance(written)
        progress.done()
        self.plan.counts["threads"] = len(threads)
        self.plan.counts["messages"] = sum(lengths)

    def _thread_lengths(self, owners: Sequence[tuple[Org, Ref | None]]) -> list[int]:
        """Heavy-tailed lengths summing to ``--messages``: most threads short, a few long."""
        rng = self.rng
        total = self.options.messages
        weights = []
        for _, ref in owners:
            weight = rng.lognormvariate(0, 1.0)
            if ref is not None and ref.status == S.DRAFT:
                weight *= 0.05  # a draft's thread: the practice talking to itself, rarely
            weights.append(weight)
        lengths = [0] * len(owners)
        candidates = [
            index for index, (_, ref) in enumerate(owners) if ref is None or ref.status != S.DRAFT
        ]
        long_count = max(1, int(len(owners) * LONG_THREAD_SHARE)) if total >= 20_000 else 0
        for index in rng.sample(candidates, min(long_count, len(candidates))):
            lengths[index] = rng.randint(1_000, 4_000)
            weights[index] = 0.0
        remaining = max(total - sum(lengths), 0)
        scale = remaining / sum(weights)
        for index, weight in enumerate(weights):
            if weight:
                lengths[index] = int(weight * scale)
        shortfall = total - sum(lengths)
        order = [index for index in candidates if weights[index]]
        position = 0
        while shortfall != 0 and order:
            index = order[position % len(order)]
            step = 1 if shortfall > 0 else -1
            if lengths[index] + step >= 0:
                lengths[index] += step
                shortfall -= step
            position += 1
        return lengths

    def _baseline_threads(
        self,
        threads: list[Row],
        owners: list[tuple[Org, Ref | None]],
        numbers: dict[int, int],
    ) -> dict[str, uuid.UUID]:
        """One general thread per virtual user for the bare save baseline (plaintext rows that
        nothing else reads), kept out of the message counts."""
        assert self.clinic is not None  # noqa: S101 - seeded first
        made: dict[str, uuid.UUID] = {}
        year = timezone.localtime(self.now).year
        for person in self._virtual_people():
            practice = (
                self._org(person.organization)
                if person.organization != self.clinic.id
                else self.practices[0]
            )
            numbers[year] = numbers.get(year, 0) + 1
            public_id = uuid.uuid4()
            threads.append(
                {
                    "id": self.ids.next("thread"),
                    "public_id": public_id,
                    "created_at": self.now,
                    "kind": ThreadKind.GENERAL,
                    "referral_id": None,
                    "number": f"T-{year}-{numbers[year]:05d}",
                    "practice_id": practice.id,
                    "clinic_id": self.clinic.id,
                    "subject": "Benchmark baseline (bare saves)",
                    "created_by_id": person.id,
                }
            )
            owners.append((practice, None))
            made[person.email] = public_id
        self._baseline = made
        return made

    def _thread_specs(
        self,
        threads: list[Row],
        owners: Sequence[tuple[Org, Ref | None]],
        lengths: Sequence[int],
    ) -> tuple[list[ThreadSpec], list[Row]]:
        """Each thread's message span (the workers write the messages), its last sequence and
        activity time, and two read positions per thread with messages."""
        rng = self.rng
        clinic_authors = self._clinic_role(Role.COORDINATOR) + self._clinic_role(Role.CLINICIAN)
        specs: list[ThreadSpec] = []
        read_states: list[Row] = []
        first_id = self.ids.counters.get("message", self.ids.offset) + 1
        for thread, (practice, ref), length in zip(threads, owners, lengths, strict=True):
            start = thread["created_at"] + timedelta(minutes=5)
            if ref is not None and ref.status == S.DRAFT:
                end = start + timedelta(hours=rng.uniform(0.5, 24))
            else:
                end = start + timedelta(days=rng.uniform(2, 120))
            end = min(end, self.now - timedelta(minutes=1))
            if end <= start:
                start = end - timedelta(minutes=10)
            step = (end - start) / max(length, 1)
            clinic_side = ref is None or ref.status != S.DRAFT
            specs.append(
                ThreadSpec(
                    thread_id=thread["id"],
                    first_id=first_id,
                    length=length,
                    start=start,
                    step=step,
                    practice_id=practice.id,
                    clinic_side=clinic_side,
                    system_messages=ref is not None and clinic_side,
                )
            )
            first_id += length
            last = start + step * length if length else thread["created_at"]
            thread["last_sequence"] = length
            thread["last_message_at"] = last
            thread["updated_at"] = last
            if length:
                practice_authors = practice.providers + practice.staff
                for reader in (rng.choice(practice_authors), rng.choice(clinic_authors)):
                    read_states.append(
                        {
                            "id": self.ids.next("read_state"),
                            "thread_id": thread["id"],
                            "user_id": reader.id,
                            "last_read_sequence": rng.randint(max(length - 5, 0), length),
                            "last_read_at": last,
                        }
                    )
        self.ids.counters["message"] = first_id - 1
        return specs, read_states

    # --- reports --------------------------------------------------------------------------------

    def seed_reports(self) -> None:
        """``--reports`` rows; ``--pdf-reports`` of them rendered and stored (see the docstring)."""
        rng = self.rng
        eligible = [
            ref for ref in self.referrals if ref.status in (S.IN_TREATMENT, S.COMPLETED, S.CLOSED)
        ]
        reserved = [ref for ref in eligible if ref.reserved_for == "report"]
        others = [ref for ref in eligible if ref.reserved_for != "report"]
        rng.shuffle(others)
        clinicians = self._clinic_role(Role.CLINICIAN)
        reports_by_ref: list[tuple[Ref, int]] = []
        budget = self.options.reports
        for ref in reserved + others:
            if budget <= 0:
                break
            # A reserved referral gets one report, so each fits in the rendered sample.
            versions = 1 if ref.reserved_for == "report" else min(rng.randint(1, 3), budget)
            reports_by_ref.append((ref, versions))
            budget -= versions
        rows: list[Row] = []
        specs: list[ReportSpec] = []
        for ref, versions in reports_by_ref:
            for version in range(1, versions + 1):
                final = version == versions and ref.status in (S.COMPLETED, S.CLOSED)
                clinician = rng.choice(clinicians)
                row = self._report_row(ref, version, final, clinician)
                if len(specs) < self.options.pdf_reports:
                    signed = ref.status in (S.COMPLETED, S.CLOSED) or rng.random() < 0.5
                    specs.append(
                        ReportSpec(
                            row_index=len(rows),
                            public_id=str(row["public_id"]),
                            referral_public_id=str(ref.public_id),
                            referral_number=ref.number,
                            provider_name=ref.provider.full_name,
                            start=ref.created_at + timedelta(days=20),
                            version=version,
                            kind=row["kind"],
                            signed=signed,
                            signed_at=row["created_at"] + timedelta(hours=6),
                            clinician_name=clinician.full_name,
                        )
                    )
                    row.update(
                        status=ReportStatus.READY, attempts=1, generated_at=row["created_at"]
                    )
                    row.update(template_version=TEMPLATE_VERSION)
                    if signed:
                        signed_at = row["created_at"] + timedelta(hours=6)
                        row.update(
                            interpretation=INTERPRETATION,
                            signed_by_id=clinician.id,
                            signed_at=signed_at,
                            delivered_at=signed_at,
                        )
                        if ref.status == S.CLOSED:
                            row.update(
                                acknowledged_by_id=ref.provider.id, acknowledged_at=signed_at
                            )
                rows.append(row)
        progress = Progress("report PDFs rendered", len(specs))
        for rendered in _in_workers(_render_reports, _chunks(specs, 5), self.options.jobs):
            for index, updates in rendered:
                rows[index].update(updates)
            progress.advance(len(rendered))
        progress.done()
        with transaction.atomic():
            copy_rows(ProgressReport, rows)
        self.plan.counts["reports"] = len(rows)
        self.plan.counts["reports_with_pdf"] = len(specs)
        self._report_rows = rows

    def _report_row(self, ref: Ref, version: int, final: bool, clinician: Person) -> Row:
        """The row as a failed generation; ``seed_reports`` makes the rendered sample ready."""
        created = ref.created_at + timedelta(days=20 + 10 * version)
        return {
            "id": self.ids.next("report"),
            "public_id": uuid.uuid4(),
            "created_at": created,
            "updated_at": created,
            "referral_id": ref.id,
            "kind": ReportKind.FINAL if final else ReportKind.INTERIM,
            "version": version,
            "requested_by_id": clinician.id,
            "last_enqueued_at": created,
            "generation_started_at": created,
            "status": ReportStatus.FAILED,
            "attempts": 3,
            "failure_reason": "Not rendered: the benchmark seed renders a sample only.",
            "input_snapshot": None,
        }

    # --- the plan -------------------------------------------------------------------------------

    def _virtual_people(self) -> list[Person]:
        options = self.options
        people = self._vu_providers()
        people += self._clinic_role(Role.COORDINATOR)[: options.coordinator_vus]
        people += self._clinic_role(Role.CLINICIAN)[: options.clinician_vus]
        return people

    def write_plan(self, path: Path) -> None:
        assert self.clinic is not None  # noqa: S101 - seeded first
        rng = self.rng
        reports_with_pdf = [row for row in self._report_rows if row["status"] == "ready"]
        ref_by_id = {ref.id: ref for ref in self.referrals}
        drafts: dict[int, list[Ref]] = {}
        reviews = [ref for ref in self.referrals if ref.reserved_for == "accept"]
        for ref in self.referrals:
            if ref.reserved_for == "submit":
                drafts.setdefault(ref.provider.id, []).append(ref)
        coordinators = self._clinic_role(Role.COORDINATOR)[: self.options.coordinator_vus]
        review_shares = {
            person.id: reviews[index :: max(len(coordinators), 1)]
            for index, person in enumerate(coordinators)
        }
        by_practice: dict[int, list[Ref]] = {}
        for ref in self.referrals:
            if not ref.reserved_for or ref.reserved_for == "report":
                by_practice.setdefault(ref.practice.id, []).append(ref)
        clinic_visible = [
            ref for ref in self.referrals if ref.status != S.DRAFT and not ref.reserved_for
        ]
        for person in self._virtual_people():
            on_clinic = person.organization == self.clinic.id
            visible = clinic_visible if on_clinic else by_practice.get(person.organization, [])
            sample = rng.sample(visible, min(VISIBLE_SAMPLE, len(visible)))
            if on_clinic:
                reports = reports_with_pdf
            else:
                reports = [
                    row
                    for row in reports_with_pdf
                    if row.get("signed_at") is not None
                    and ref_by_id[row["referral_id"]].practice.id == person.organization
                ]
            report_sample = rng.sample(reports, min(VISIBLE_SAMPLE // 2, len(reports)))
            self.plan.virtual_users.append(
                {
                    "email": person.email,
                    "totp_secret": person.totp_secret,
                    "role": person.role,
                    "organization": str(
                        self.clinic.public_id
                        if on_clinic
                        else self._org(person.organization).public_id
                    ),
                    "organization_kind": "clinic" if on_clinic else "practice",
                    "referrals": [str(ref.public_id) for ref in sample],
                    "threads": [str(ref.thread_public_id) for ref in sample],
                    "reports": [str(row["public_id"]) for row in report_sample],
                    "drafts": [str(ref.public_id) for ref in drafts.get(person.id, [])],
                    "reviews": [str(ref.public_id) for ref in review_shares.get(person.id, [])],
                    "baseline_thread": str(self._baseline[person.email]),
                }
            )
        vu_emails = {user["email"] for user in self.plan.virtual_users}
        others = [person for person in self.people if person.email not in vu_emails]
        for person in rng.sample(others, min(self.options.login_users, len(others))):
            self.plan.login_users.append({"email": person.email, "totp_secret": person.totp_secret})
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(
                {
                    "virtual_users": self.plan.virtual_users,
                    "login_users": self.plan.login_users,
                    "counts": self.plan.counts,
                    "seconds": self.plan.seconds,
                },
                handle,
            )

    # --- checks ---------------------------------------------------------------------------------

    def verify(self) -> None:
        """Read a sample back through the ORM: every token decrypts, PHI is not in the clear."""
        referral = Referral.objects.select_related("patient").order_by("?").first()
        message = Message.objects.filter(kind=MessageKind.USER).order_by("-id").first()
        if referral is None or message is None:
            raise SystemExit("seed check: nothing was written")
        if not referral.patient.given_name or not referral.reason or not message.body:
            raise SystemExit("seed check: an encrypted value read back empty")
        raw = Referral.objects.filter(pk=referral.pk).values_list("reason", flat=True).get()
        if not str(raw).startswith("v1.") or referral.reason in str(raw):
            raise SystemExit("seed check: a referral reason is not stored encrypted")

    def run(self, plan_path: Path) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("people", self.seed_people),
            ("plan_referrals", self.plan_referrals),
            ("referrals", self.seed_referrals),
            ("messages", self.seed_messages),
            ("reports", self.seed_reports),
        ]
        for name, step in steps:
            started = time.perf_counter()
            step()
            self.plan.seconds[name] = round(time.perf_counter() - started, 1)
        reset_sequences(
            [
                Organization,
                User,
                Membership,
                EmailAddress,
                Authenticator,
                Patient,
                Referral,
                PriorTrial,
                ReferralEvent,
                Thread,
                Message,
                ThreadReadState,
                ProgressReport,
            ]
        )
        with connection.cursor() as cursor:
            # As a database that has been running a while: statistics, visibility map and hint
            # bits in place, so the first reads under load do not rewrite freshly loaded pages.
            cursor.execute("VACUUM (ANALYZE)")
        self.verify()
        self.plan.counts.update(
            practices=len(self.practices),
            users=len(self.people),
            referrals=len(self.referrals),
        )
        audit_record(
            actor=None,
            action="bench.seeded",
            object_type="",
            object_id=None,
            details=dict(self.plan.counts),
        )
        self.write_plan(plan_path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--plan", type=Path, required=True, help="Where to write the plan JSON.")
    parser.add_argument("--practices", type=int, default=50)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--referrals", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--reports", type=int, default=5_000)
    parser.add_argument("--pdf-reports", type=int, default=300)
    parser.add_argument("--provider-vus", type=int, default=35)
    parser.add_argument("--coordinator-vus", type=int, default=10)
    parser.add_argument("--clinician-vus", type=int, default=5)
    parser.add_argument("--drafts-per-vu", type=int, default=4)
    parser.add_argument("--reviews-per-vu", type=int, default=6)
    parser.add_argument("--login-users", type=int, default=50)
    parser.add_argument("--id-offset", type=int, default=0, help="First id is offset + 1.")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--jobs", type=int, default=min(os.cpu_count() or 1, 2), help="Worker processes."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    password = os.environ.get("BENCH_PASSWORD", "")
    if len(password) < 12:
        raise SystemExit("BENCH_PASSWORD (12+ characters) must be set for the seeded users")
    if connection.vendor != "postgresql":
        raise SystemExit("the benchmark seeds PostgreSQL only (COPY); set DATABASE_URL")
    options = Options(
        practices=arguments.practices,
        users=arguments.users,
        referrals=arguments.referrals,
        messages=arguments.messages,
        reports=arguments.reports,
        pdf_reports=arguments.pdf_reports,
        provider_vus=arguments.provider_vus,
        coordinator_vus=arguments.coordinator_vus,
        clinician_vus=arguments.clinician_vus,
        drafts_per_vu=arguments.drafts_per_vu,
        reviews_per_vu=arguments.reviews_per_vu,
        login_users=arguments.login_users,
        password=password,
        id_offset=arguments.id_offset,
        seed=arguments.seed,
        jobs=arguments.jobs,
    )
    started = time.perf_counter()
    Seeder(options).run(arguments.plan)
    print(f"  seeded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
