"""EncryptedTextField / EncryptedJSONField through the ORM: round trips, binding, refusals."""

from __future__ import annotations

import json
import logging
import pickle
import uuid
from typing import Any

import pytest
from django.core import checks, serializers
from django.core.exceptions import FieldError
from django.db import connection, models, transaction
from django.forms import modelform_factory
from django.test.utils import isolate_apps
from rest_framework import serializers as drf

from portal.core.models import BaseModel
from portal.crypto import keys
from portal.crypto.envelope import associated_data, decrypt_value, token_key_id
from portal.crypto.errors import DecryptionError
from portal.crypto.fields import Ciphertext, EncryptedJSONField, EncryptedTextField
from portal.crypto.keys import keyring

from .conftest import UseKeys
from .helpers import CANARY
from .testmodels import SecretNote, SecretRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("crypto_tables", "use_keys")]

TEXT = CANARY.decode()


def raw_column(model: type[models.Model], column: str, pk: Any) -> Any:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name(column)} FROM {table} WHERE id = %s",  # noqa: S608
            [pk],
        )
        return cursor.fetchone()[0]


def set_raw_column(model: type[models.Model], column: str, pk: Any, value: Any) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {connection.ops.quote_name(column)} = %s WHERE id = %s",  # noqa: S608
            [value, pk],
        )


def decryption_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "portal.security" and r.getMessage() == "security.decryption_failed"
    ]


# --- round trips ------------------------------------------------------------------------------


def test_text_round_trip_stores_only_a_bound_token() -> None:
    note = SecretNote.objects.create(body=TEXT, title="plain")

    loaded = SecretNote.objects.get(pk=note.pk)

    assert loaded.body == TEXT
    assert type(loaded.body) is str
    stored = raw_column(SecretNote, "body", note.pk)
    assert stored.startswith("v1.k1.")
    assert TEXT not in stored
    expected_ad = associated_data("crypto", "secretnote", "body", str(note.public_id))
    assert decrypt_value(keyring(), stored, associated_data=expected_ad) == CANARY


def test_json_round_trip_keeps_structure_and_unicode() -> None:
    value = {"name": TEXT, "scores": [1, 2.5, None, True], "nested": {"é": "☃"}}
    record = SecretRecord.objects.create(data=value)

    loaded = SecretRecord.objects.get(pk=record.pk)

    assert loaded.data == value
    stored = raw_column(SecretRecord, "data", record.pk)
    assert stored.startswith("v1.k1.")
    assert "scores" not in stored
    ad = associated_data("crypto", "secretrecord", "data", str(record.public_id))
    assert json.loads(decrypt_value(keyring(), stored, associated_data=ad)) == value


@pytest.mark.parametrize("value", [[], {}, "", 0, False, [1, "two"]])
def test_json_falsy_and_scalar_values_are_stored_not_nulled(value: Any) -> None:
    record = SecretRecord.objects.create(data=value)

    assert SecretRecord.objects.get(pk=record.pk).data == value
    assert raw_column(SecretRecord, "data", record.pk).startswith("v1.")


def test_none_is_sql_null_both_ways() -> None:
    note = SecretNote.objects.create(body="x", summary=None)
    record = SecretRecord.objects.create(data=None)

    assert raw_column(SecretNote, "summary", note.pk) is None
    assert raw_column(SecretRecord, "data", record.pk) is None
    assert SecretNote.objects.get(pk=note.pk).summary is None
    assert SecretRecord.objects.get(pk=record.pk).data is None
    assert list(SecretNote.objects.filter(summary__isnull=True)) == [note]
    assert list(SecretNote.objects.filter(summary=None)) == [note]
    assert list(SecretNote.objects.exclude(summary=None)) == []


def test_empty_string_is_encrypted_too() -> None:
    note = SecretNote.objects.create(body="")

    assert raw_column(SecretNote, "body", note.pk).startswith("v1.k1.")
    assert SecretNote.objects.get(pk=note.pk).body == ""


def test_wrong_python_types_are_refused_at_save() -> None:
    with pytest.raises(TypeError, match="takes str"), transaction.atomic():
        SecretNote.objects.create(body=42)
    with pytest.raises(TypeError, match="JSON-compatible"), transaction.atomic():
        SecretRecord.objects.create(data={"when": uuid.uuid4()})
    with pytest.raises(TypeError, match="JSON-compatible"), transaction.atomic():
        SecretRecord.objects.create(data=[float("nan")])
    assert SecretNote.objects.count() == 0
    assert SecretRecord.objects.count() == 0


# --- saving without needless re-encryption ----------------------------------------------------


def test_saving_an_unchanged_row_keeps_its_token() -> None:
    note = SecretNote.objects.create(body=TEXT, summary="s")
    before = raw_column(SecretNote, "body", note.pk)

    untouched = SecretNote.objects.get(pk=note.pk)
    untouched.title = "renamed"
    untouched.save()
    read = SecretNote.objects.get(pk=note.pk)
    assert read.body == TEXT
    read.save()
    note.save(update_fields=["body"])  # the instance that encrypted it remembers its token

    assert raw_column(SecretNote, "body", note.pk) == before
    assert SecretNote.objects.get(pk=note.pk).title == "renamed"


def test_changing_a_value_writes_a_new_token() -> None:
    note = SecretNote.objects.create(body="first")
    before = raw_column(SecretNote, "body", note.pk)

    loaded = SecretNote.objects.get(pk=note.pk)
    loaded.body = "second"
    loaded.save(update_fields=["body"])

    after = raw_column(SecretNote, "body", note.pk)
    assert after != before
    assert after.split(".")[2] != before.split(".")[2]  # a fresh data key
    assert SecretNote.objects.get(pk=note.pk).body == "second"


def test_json_mutated_in_place_is_saved() -> None:
    record = SecretRecord.objects.create(data={"items": [1]})
    loaded = SecretRecord.objects.get(pk=record.pk)

    loaded.data["items"].append(2)
    loaded.save()

    assert SecretRecord.objects.get(pk=record.pk).data == {"items": [1, 2]}


def test_deferred_field_and_refresh_from_db_decrypt() -> None:
    note = SecretNote.objects.create(body=TEXT, summary="sum")

    deferred = SecretNote.objects.only("title").get(pk=note.pk)
    assert deferred.get_deferred_fields() >= {"body", "summary"}
    assert deferred.body == TEXT

    stale = SecretNote.objects.get(pk=note.pk)
    SecretNote.objects.filter(pk=note.pk).update(summary=None)
    stale.refresh_from_db()
    assert stale.summary is None
    assert stale.body == TEXT


def test_copying_a_row_rebinds_its_values_to_the_copy() -> None:
    original = SecretNote.objects.create(body=TEXT, summary="s")
    copy = SecretNote.objects.get(pk=original.pk)

    copy.pk = None
    copy.public_id = uuid.uuid4()
    copy._state.adding = True
    copy.save()

    assert SecretNote.objects.get(pk=copy.pk).body == TEXT
    assert SecretNote.objects.get(pk=copy.pk).summary == "s"
    assert SecretNote.objects.get(pk=original.pk).body == TEXT


def test_bulk_create_binds_each_row() -> None:
    notes = SecretNote.objects.bulk_create([SecretNote(body=f"n{i}") for i in range(3)])

    assert sorted(n.body for n in SecretNote.objects.all()) == ["n0", "n1", "n2"]
    assert len({raw_column(SecretNote, "body", n.pk) for n in notes}) == 3


def test_model_form_reads_and_writes_plaintext() -> None:
    note = SecretNote.objects.create(body="before", summary=None)
    form_class = modelform_factory(SecretNote, fields=["body", "summary"])

    assert form_class(instance=SecretNote.objects.get(pk=note.pk)).initial["body"] == "before"
    form = form_class({"body": "after", "summary": ""}, instance=note)
    assert form.is_valid(), form.errors
    form.save()

    assert SecretNote.objects.get(pk=note.pk).body == "after"


# --- what is refused, on purpose --------------------------------------------------------------


def test_values_and_values_list_return_tokens() -> None:
    note = SecretNote.objects.create(body=TEXT)

    (value,) = SecretNote.objects.values_list("body", flat=True)
    row = SecretNote.objects.values("body").get()

    assert isinstance(value, Ciphertext)
    assert value == raw_column(SecretNote, "body", note.pk)
    assert row["body"] == value
    assert TEXT not in value


@pytest.mark.parametrize(
    "lookup",
    [
        {"body": "x"},
        {"body__exact": "x"},
        {"body__iexact": "x"},
        {"body__icontains": "x"},
        {"body__startswith": "v1."},
        {"body__in": ["x"]},
        {"body__gt": "a"},
        {"body__lower": "x"},
        {"summary__regex": "."},
    ],
)
def test_lookups_other_than_isnull_raise(lookup: dict[str, Any]) -> None:
    SecretNote.objects.create(body="x")

    with pytest.raises(FieldError, match="is encrypted and cannot be used"):
        list(SecretNote.objects.filter(**lookup))


def test_queryset_update_and_bulk_update_with_plaintext_raise() -> None:
    note = SecretNote.objects.create(body=TEXT)
    before = raw_column(SecretNote, "body", note.pk)

    refused = r"only be written through Model\.save"
    with pytest.raises(TypeError, match=refused), transaction.atomic():
        SecretNote.objects.filter(pk=note.pk).update(body="plaintext!")
    note.body = "plaintext!"
    with pytest.raises(TypeError, match=refused), transaction.atomic():
        SecretNote.objects.bulk_update([note], ["body"])

    assert raw_column(SecretNote, "body", note.pk) == before


def test_serialisation_writes_tokens_not_plaintext() -> None:
    note = SecretNote.objects.create(body=TEXT)
    record = SecretRecord.objects.create(data={"k": TEXT})

    dumped = serializers.serialize("json", [SecretNote.objects.get(pk=note.pk), record])

    assert TEXT not in dumped
    assert json.loads(dumped)[0]["fields"]["body"] == raw_column(SecretNote, "body", note.pk)


@isolate_apps("portal.crypto")
def test_system_checks_require_public_id_and_refuse_indexes() -> None:
    class NoRowId(models.Model):
        secret = EncryptedTextField()

        class Meta:
            app_label = "crypto"

        def __str__(self) -> str:
            return "no row id"

    class Indexed(BaseModel):
        secret = EncryptedJSONField(db_index=True)

        class Meta:
            app_label = "crypto"

        def __str__(self) -> str:
            return "indexed"

    no_row_ids = {e.id for e in NoRowId._meta.get_field("secret").check()}
    indexed_ids = {e.id for e in Indexed._meta.get_field("secret").check()}
    good_ids = {e.id for e in SecretNote._meta.get_field("body").check()}

    assert no_row_ids == {"portal_crypto.E001"}
    assert indexed_ids == {"portal_crypto.E002"}
    assert good_ids == set()
    assert all(isinstance(e, checks.Error) for e in NoRowId._meta.get_field("secret").check())


def test_the_field_deconstructs_for_migrations() -> None:
    field = SecretNote._meta.get_field("summary")

    _name, path, args, kwargs = field.deconstruct()
    assert args == []

    assert path == "portal.crypto.fields.EncryptedTextField"
    assert kwargs == {"null": True, "blank": True}


# --- fail closed ------------------------------------------------------------------------------


def _flip(token: str, segment: int) -> str:
    parts = token.split(".")
    text = parts[segment]
    parts[segment] = ("B" if text[5] == "A" else "A").join((text[:5], text[6:]))
    return ".".join(parts)


@pytest.mark.parametrize(
    ("segment", "reason"),
    [(2, "authentication_failed"), (3, "authentication_failed"), (4, "authentication_failed")],
)
def test_a_flipped_character_in_the_stored_token_fails_closed(
    caplog: pytest.LogCaptureFixture, segment: int, reason: str
) -> None:
    note = SecretNote.objects.create(body=TEXT)
    set_raw_column(
        SecretNote, "body", note.pk, _flip(raw_column(SecretNote, "body", note.pk), segment)
    )
    loaded = SecretNote.objects.get(pk=note.pk)

    with pytest.raises(DecryptionError) as excinfo:
        _ = loaded.body

    assert excinfo.value.reason == reason
    (event,) = decryption_events(caplog)
    assert event.reason == reason  # type: ignore[attr-defined]
    assert event.label == f"crypto.secretnote.body:{note.public_id}"  # type: ignore[attr-defined]
    assert TEXT not in caplog.text
    # Nothing was cached: the attribute still fails, and never turns into ciphertext or "".
    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = loaded.body


def test_a_truncated_token_fails_closed_as_malformed(caplog: pytest.LogCaptureFixture) -> None:
    record = SecretRecord.objects.create(data={"k": TEXT})
    set_raw_column(
        SecretRecord, "data", record.pk, raw_column(SecretRecord, "data", record.pk)[:-3]
    )

    with pytest.raises(DecryptionError, match="malformed") as excinfo:
        _ = SecretRecord.objects.get(pk=record.pk).data

    assert excinfo.value.reason == "malformed"
    assert [e.reason for e in decryption_events(caplog)] == ["malformed"]  # type: ignore[attr-defined]


def test_a_token_moved_to_another_row_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    victim = SecretNote.objects.create(body=TEXT)
    other = SecretNote.objects.create(body="other")
    set_raw_column(SecretNote, "body", other.pk, raw_column(SecretNote, "body", victim.pk))

    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = SecretNote.objects.get(pk=other.pk).body

    (event,) = decryption_events(caplog)
    assert event.label == f"crypto.secretnote.body:{other.public_id}"  # type: ignore[attr-defined]
    assert SecretNote.objects.get(pk=victim.pk).body == TEXT


def test_a_token_moved_to_another_field_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    note = SecretNote.objects.create(body=TEXT, summary="s")
    set_raw_column(SecretNote, "summary", note.pk, raw_column(SecretNote, "body", note.pk))

    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = SecretNote.objects.get(pk=note.pk).summary

    assert len(decryption_events(caplog)) == 1


def test_a_token_moved_to_another_model_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    note = SecretNote.objects.create(body=json.dumps(TEXT))
    record = SecretRecord.objects.create(data="x")
    set_raw_column(SecretRecord, "data", record.pk, raw_column(SecretNote, "body", note.pk))

    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = SecretRecord.objects.get(pk=record.pk).data

    assert len(decryption_events(caplog)) == 1


def test_an_unknown_key_id_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    note = SecretNote.objects.create(body=TEXT)
    token = raw_column(SecretNote, "body", note.pk)
    set_raw_column(SecretNote, "body", note.pk, token.replace("v1.k1.", "v1.k9.", 1))

    with pytest.raises(DecryptionError, match="not in the keyring") as excinfo:
        _ = SecretNote.objects.get(pk=note.pk).body

    assert excinfo.value.reason == "unknown_key"
    (event,) = decryption_events(caplog)
    assert (event.reason, event.key_id) == ("unknown_key", "k9")  # type: ignore[attr-defined]


def test_a_missing_kek_fails_closed(caplog: pytest.LogCaptureFixture, use_keys: UseKeys) -> None:
    note = SecretNote.objects.create(body=TEXT)
    record = SecretRecord.objects.create(data=[TEXT])
    use_keys("k2", active="k2")  # k1 removed from the keyring before rotation

    with pytest.raises(DecryptionError, match="not in the keyring"):
        _ = SecretNote.objects.get(pk=note.pk).body
    with pytest.raises(DecryptionError, match="not in the keyring"):
        _ = SecretRecord.objects.get(pk=record.pk).data

    assert [(e.reason, e.key_id) for e in decryption_events(caplog)] == [  # type: ignore[attr-defined]
        ("unknown_key", "k1"),
        ("unknown_key", "k1"),
    ]


def test_a_kek_with_the_right_id_but_wrong_material_fails_closed(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    note = SecretNote.objects.create(body=TEXT)
    settings.PORTAL_ENCRYPTION_KEYS = "k1:" + "Z" * 43 + "="
    keys.reset()

    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = SecretNote.objects.get(pk=note.pk).body
    assert len(decryption_events(caplog)) == 1


def test_new_values_use_the_active_key(use_keys: UseKeys) -> None:
    old = SecretNote.objects.create(body="old")
    use_keys("k1", "k2", active="k2")
    new = SecretNote.objects.create(body="new")

    assert token_key_id(raw_column(SecretNote, "body", old.pk)) == "k1"
    assert token_key_id(raw_column(SecretNote, "body", new.pk)) == "k2"
    assert SecretNote.objects.get(pk=old.pk).body == "old"


def test_a_canary_never_appears_in_raw_database_rows() -> None:
    SecretNote.objects.create(body=TEXT, summary=TEXT.upper(), title="plain title")
    SecretRecord.objects.create(data={"patient": TEXT, "list": [TEXT]})
    SecretNote.objects.bulk_create([SecretNote(body=f"{TEXT} {i}") for i in range(3)])

    for model in (SecretNote, SecretRecord):
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
            rows = cursor.fetchall()
        dump = repr(rows)
        assert rows
        for needle in (TEXT, TEXT.upper(), "Zoë", "patient", CANARY.hex()):
            assert needle not in dump, (model.__name__, needle)
    assert "plain title" in repr(SecretNote.objects.values_list("title"))


def test_instances_pickle_and_keep_working() -> None:
    note = SecretNote.objects.create(body=TEXT)
    loaded = SecretNote.objects.get(pk=note.pk)
    fresh = pickle.loads(pickle.dumps(SecretNote.objects.get(pk=note.pk)))  # noqa: S301
    _ = loaded.body
    read = pickle.loads(pickle.dumps(loaded))  # noqa: S301 - decrypted, with its seal

    assert fresh.body == TEXT
    assert read.body == TEXT
    read.save()
    assert SecretNote.objects.get(pk=note.pk).body == TEXT


def test_model_serializers_see_text_and_json() -> None:
    class NoteSerializer(drf.ModelSerializer[SecretNote]):
        class Meta:
            model = SecretNote
            fields = ["body", "summary"]

    class RecordSerializer(drf.ModelSerializer[SecretRecord]):
        class Meta:
            model = SecretRecord
            fields = ["data"]

    note = SecretNote.objects.create(body=TEXT)
    record = SecretRecord.objects.create(data={"k": [1, TEXT]})

    assert NoteSerializer(SecretNote.objects.get(pk=note.pk)).data == {
        "body": TEXT,
        "summary": None,
    }
    assert RecordSerializer(SecretRecord.objects.get(pk=record.pk)).data == {
        "data": {"k": [1, TEXT]}
    }
    incoming = RecordSerializer(data={"data": {"answers": [0, 3]}})
    assert incoming.is_valid(), incoming.errors
    saved = incoming.save()
    assert SecretRecord.objects.get(pk=saved.pk).data == {"answers": [0, 3]}
