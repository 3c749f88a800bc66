"""``rotate_keys``: interrupted half-way and rerun, everything ends on the new key and reads
without the old one; no double work; --reencrypt; --dry-run; failures are reported."""

from __future__ import annotations

import hashlib
import logging
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from portal.crypto import rotation
from portal.crypto.envelope import token_key_id
from portal.crypto.models import EncryptedFile
from portal.crypto.storage import (
    StoredFile,
    open_encrypted_file,
    store_encrypted_file,
    stored_file_path,
)
from portal.crypto.streams import read_stream_header, stream_header_key_id

from .conftest import UseKeys
from .helpers import CANARY
from .testmodels import SecretNote, SecretRecord

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("crypto_tables", "use_keys", "media_root"),
]

TEXT = CANARY.decode()


def tokens(model: type[Any], column: str) -> dict[int, str | None]:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {connection.ops.quote_name(column)} FROM {table}")  # noqa: S608
        return dict(cursor.fetchall())


def all_tokens() -> dict[tuple[str, int], str]:
    found = {}
    for model, column in ((SecretNote, "body"), (SecretNote, "summary"), (SecretRecord, "data")):
        for pk, token in tokens(model, column).items():
            if token is not None:
                found[(f"{model.__name__}.{column}", pk)] = token
    return found


def key_ids() -> set[str]:
    return {token_key_id(token) for token in all_tokens().values()}


def file_key_id(stored: StoredFile) -> str:
    with stored_file_path(stored.name).open("rb") as handle:
        return stream_header_key_id(read_stream_header(handle))


def read_file(stored: StoredFile, owner: str) -> bytes:
    with open_encrypted_file(
        stored.name, purpose="attachment", owner_id=owner, expected_sha256=stored.sha256
    ) as stream:
        return b"".join(stream)


@pytest.fixture
def dataset() -> dict[str, Any]:
    """Under k1: 5 notes (3 with a summary), 3 JSON records (one NULL), 2 files."""
    notes = [
        SecretNote.objects.create(body=f"{TEXT} note {i}", summary=f"sum {i}" if i < 3 else None)
        for i in range(5)
    ]
    records = [SecretRecord.objects.create(data={"i": i, "who": TEXT}) for i in range(2)] + [
        SecretRecord.objects.create(data=None)
    ]
    owners = [str(n.public_id) for n in notes[:2]]
    files = [
        (
            store_encrypted_file(
                BytesIO(CANARY * 3000 + bytes([i])), purpose="attachment", owner_id=o
            ),
            o,
        )
        for i, o in enumerate(owners)
    ]
    return {"notes": notes, "records": records, "files": files}


def expect_readable(dataset: dict[str, Any]) -> None:
    for i, note in enumerate(dataset["notes"]):
        loaded = SecretNote.objects.get(pk=note.pk)
        assert loaded.body == f"{TEXT} note {i}"
        assert loaded.summary == (f"sum {i}" if i < 3 else None)
    for i, record in enumerate(dataset["records"]):
        expected = {"i": i, "who": TEXT} if i < 2 else None
        assert SecretRecord.objects.get(pk=record.pk).data == expected
    for i, (stored, owner) in enumerate(dataset["files"]):
        assert read_file(stored, owner) == CANARY * 3000 + bytes([i])


class CountingRewrap:
    """Wraps ``rotation.rewrap_value``: counts calls, optionally crashes on call ``crash_on``."""

    def __init__(self, crash_on: int | None = None) -> None:
        self.calls = 0
        self.crash_on = crash_on
        self.original = rotation.rewrap_value

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.calls == self.crash_on:
            raise KeyboardInterrupt("simulated crash")
        return self.original(*args, **kwargs)


def run(*args: str) -> str:
    out = StringIO()
    call_command("rotate_keys", *args, stdout=out)
    return out.getvalue()


def test_interrupted_rotation_resumes_without_double_work_and_k1_can_go(
    dataset: dict[str, Any], use_keys: UseKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys("k1", "k2", active="k2")
    before = all_tokens()
    assert key_ids() == {"k1"}

    crashing = CountingRewrap(crash_on=3)
    monkeypatch.setattr(rotation, "rewrap_value", crashing)
    with pytest.raises(KeyboardInterrupt):
        run("--batch-size", "2")

    # The first batch of two committed; the second rolled back with the crash.
    after_crash = all_tokens()
    moved = {key for key, token in after_crash.items() if token_key_id(token) == "k2"}
    assert len(moved) == 2
    assert all(key[0] == "SecretNote.body" for key in moved)
    for key in moved:  # only the wrapped DEK changed; nonce and ciphertext carried over
        assert after_crash[key].split(".")[3:] == before[key].split(".")[3:]
        assert after_crash[key].split(".")[2] != before[key].split(".")[2]

    resumed = CountingRewrap()
    monkeypatch.setattr(rotation, "rewrap_value", resumed)
    output = run("--batch-size", "2")

    # 10 values in all: 2 done before the crash, so exactly 8 were re-wrapped on the rerun.
    assert resumed.calls == 8
    final = all_tokens()
    assert {key: final[key] for key in moved} == {key: after_crash[key] for key in moved}
    assert key_ids() == {"k2"}
    assert {file_key_id(stored) for stored, _ in dataset["files"]} == {"k2"}
    assert set(EncryptedFile.objects.values_list("key_id", flat=True)) == {"k2"}
    assert "crypto.secretnote.body: 3 to process" in output
    assert "  batch 1: 2/3 done, 2 changed, 0 skipped, 0 failed" in output
    assert "  batch 2: 3/3 done, 3 changed, 0 skipped, 0 failed" in output
    assert f"{rotation.FILES_TARGET}: 2 to process" in output
    assert "k1 can be removed from PORTAL_ENCRYPTION_KEYS" in output

    # A third run finds nothing to do.
    idle = CountingRewrap()
    monkeypatch.setattr(rotation, "rewrap_value", idle)
    assert "Done: 0 changed, 0 failed." in run()
    assert idle.calls == 0
    assert all_tokens() == final

    # The retired key goes; every value and file still reads.
    use_keys("k2", active="k2")
    expect_readable(dataset)


def test_files_interrupted_mid_way_resume(
    dataset: dict[str, Any], use_keys: UseKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys("k1", "k2", active="k2")
    original = rotation.rewrap_stored_file
    calls: list[str] = []

    def crash_on_second(record: EncryptedFile) -> bool:
        calls.append(record.name)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        return original(record)

    monkeypatch.setattr(rotation, "rewrap_stored_file", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run("--batch-size", "1")
    first, second = (stored for stored, _ in dataset["files"])
    assert (file_key_id(first), file_key_id(second)) == ("k2", "k1")

    monkeypatch.setattr(rotation, "rewrap_stored_file", original)
    output = run("--batch-size", "1")

    assert f"{rotation.FILES_TARGET}: 1 to process" in output
    use_keys("k2", active="k2")
    expect_readable(dataset)


def test_no_plaintext_on_disk_or_in_rows_after_rotation(
    dataset: dict[str, Any], use_keys: UseKeys, media_root: Path
) -> None:
    use_keys("k1", "k2", active="k2")
    run()

    for path in media_root.rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_bytes()
    for model in (SecretNote, SecretRecord):
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
            rows = cursor.fetchall()
        assert rows
        assert TEXT not in repr(rows)
        assert "note" not in repr(rows)


def test_dry_run_changes_nothing(dataset: dict[str, Any], use_keys: UseKeys) -> None:
    use_keys("k1", "k2", active="k2")
    before = all_tokens()
    headers = [stored_file_path(s.name).read_bytes()[:200] for s, _ in dataset["files"]]

    output = run("--dry-run")

    assert "dry run" in output
    assert "Done: 12 would change, 0 failed." in output
    assert all_tokens() == before
    assert [stored_file_path(s.name).read_bytes()[:200] for s, _ in dataset["files"]] == headers
    assert set(EncryptedFile.objects.values_list("key_id", flat=True)) == {"k1"}


def test_a_value_that_cannot_be_unwrapped_is_reported_and_left(
    dataset: dict[str, Any], use_keys: UseKeys, caplog: pytest.LogCaptureFixture
) -> None:
    victim, other = dataset["notes"][0], dataset["notes"][1]
    moved = tokens(SecretNote, "body")[other.pk]
    table = connection.ops.quote_name(SecretNote._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET body = %s WHERE id = %s", [moved, victim.pk])  # noqa: S608
    use_keys("k1", "k2", active="k2")

    with pytest.raises(CommandError, match="1 values or files could not be processed"):
        run()

    assert token_key_id(all_tokens()[("SecretNote.body", victim.pk)]) == "k1"
    assert sum(token_key_id(t) == "k2" for t in all_tokens().values()) == 9
    events = [r for r in caplog.records if r.getMessage() == "security.decryption_failed"]
    assert [e.label for e in events] == [f"crypto.secretnote.body:{victim.public_id}"]  # type: ignore[attr-defined]


def test_a_row_rewritten_meanwhile_is_left_to_the_application(
    dataset: dict[str, Any], use_keys: UseKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys("k1", "k2", active="k2")
    target = dataset["notes"][0]
    original = rotation.rewrap_value

    def rewrap_while_the_app_writes(ring: Any, token: str, **kwargs: Any) -> str:
        result = original(ring, token, **kwargs)
        if token == tokens(SecretNote, "body")[target.pk]:
            note = SecretNote.objects.get(pk=target.pk)
            note.body = "written by the application meanwhile"
            note.save()
        return result

    monkeypatch.setattr(rotation, "rewrap_value", rewrap_while_the_app_writes)
    output = run()

    assert "1 skipped" in output
    assert SecretNote.objects.get(pk=target.pk).body == "written by the application meanwhile"
    assert key_ids() == {"k2"}


def test_reencrypt_gives_chosen_rows_fresh_data_keys(
    dataset: dict[str, Any], use_keys: UseKeys
) -> None:
    chosen, untouched = dataset["notes"][0], dataset["notes"][1]
    before = all_tokens()

    output = run("--reencrypt", f"crypto.SecretNote:{chosen.public_id}")

    after = all_tokens()
    for column in ("SecretNote.body", "SecretNote.summary"):
        old, new = before[(column, chosen.pk)], after[(column, chosen.pk)]
        assert old.split(".")[2] != new.split(".")[2]  # new wrapped DEK
        assert old.split(".")[3] != new.split(".")[3]  # new nonce
        assert after[(column, untouched.pk)] == before[(column, untouched.pk)]
    assert "crypto.secretnote (re-encrypt)" in output
    assert "2 changed" in output
    expect_readable(dataset)


def test_reencrypt_a_whole_model_and_files_under_a_new_key(
    dataset: dict[str, Any], use_keys: UseKeys
) -> None:
    use_keys("k1", "k2", active="k2")
    stored, owner = dataset["files"][0]
    record = EncryptedFile.objects.get(name=stored.name)
    before = stored_file_path(stored.name).read_bytes()

    run(
        "--reencrypt",
        "crypto.SecretRecord",
        "--reencrypt",
        f"crypto.EncryptedFile:{record.public_id}",
    )

    after = stored_file_path(stored.name).read_bytes()
    assert after[-1000:] != before[-1000:]  # every chunk re-encrypted, not just the header
    assert hashlib.sha256(read_file(stored, owner)).hexdigest() == stored.sha256
    use_keys("k2", active="k2")
    expect_readable(dataset)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("crypto.Nope", "unknown model"),
        ("accounts.Organization", "has no encrypted fields"),
        ("crypto.SecretNote:not-a-uuid", "is not a public id"),
        ("crypto.SecretNote:", "no public ids"),
    ],
)
def test_bad_reencrypt_arguments_are_refused(spec: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("--reencrypt", spec)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        run("--batch-size", "0")


def test_discovery_finds_every_encrypted_field_of_installed_apps() -> None:
    labels = {target.label for target in rotation.encrypted_fields()}

    assert {
        "crypto.secretnote.body",
        "crypto.secretnote.summary",
        "crypto.secretrecord.data",
    } <= labels
    assert all(label.count(".") == 2 for label in labels)


def test_security_log_carries_no_plaintext(
    dataset: dict[str, Any], use_keys: UseKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    use_keys("k3", active="k3")  # neither k1 nor k2: everything fails

    with pytest.raises(CommandError):
        run()

    assert TEXT not in caplog.text
    assert "note" not in caplog.text
