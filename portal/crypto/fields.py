"""Model fields that keep PHI encrypted in the database and plaintext in Python.

``EncryptedTextField`` (a ``str``) and ``EncryptedJSONField`` (any JSON-compatible value) store a
``v1.`` envelope token (``portal.crypto.envelope``) in a TEXT column. The token's associated data
binds it to ``(app label, model name, field attname, str(row.public_id))``, so the model must have
a ``public_id`` (inherit ``portal.core.models.BaseModel``): a token copied to another row or
another field fails to decrypt.

How values move:

- Loading a row puts the raw token in ``instance.__dict__`` as a ``Ciphertext`` (a ``str``
  subclass); nothing is decrypted yet. ``from_db_value`` never sees the instance, so decryption
  happens in the attribute descriptor on first access, where the row's ``public_id`` is known.
  The decrypted value then replaces the token in ``__dict__``.
- Saving encrypts in ``pre_save`` (which gets the instance). An untouched token, or a decrypted
  value equal to what was read, is written back as the same token: saving an unchanged row does
  no cryptographic work and keeps its data key. A changed value gets a fresh data key.
- Decryption failure raises ``DecryptionError`` (fail closed) after a security event is recorded
  by ``portal.crypto.values``; the attribute never yields ciphertext or an empty value instead.

What does not work, on purpose:

- Filtering: every lookup except ``isnull`` (and ``=None``) raises ``FieldError``; ciphertext
  cannot be compared. Use a blind-index column (``portal.crypto.blind_index``) for equality.
  Ordering by the column is not refused by Django but orders by random ciphertext: don't.
- ``values()`` / ``values_list()`` return the stored tokens (``Ciphertext``), never plaintext.
- ``QuerySet.update()`` and ``bulk_update()`` with a plaintext value raise ``TypeError`` (there
  is no row to bind it to); assign the attribute and ``save()`` instead. ``bulk_create()`` works.
- Serialisation (``dumpdata``) writes the tokens, not plaintext; loading such fixtures is not
  supported.
- A migration adding a non-null encrypted field to an existing table cannot give old rows a
  default (each row needs its own token): add it with ``null=True``, fill it by saving each row
  in a data migration, then make it non-null.
- Renaming the app, the model or the field changes the associated data: existing values no
  longer decrypt until re-encrypted under the new names (``envelope.reencrypt_value`` with
  ``new_associated_data``) in the same migration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import signals
from django.db.models.lookups import Exact, Lookup, Transform
from django.db.models.query_utils import DeferredAttribute

from portal.crypto.envelope import associated_data
from portal.crypto.values import decrypt_text, encrypt_text

__all__ = ["Ciphertext", "EncryptedField", "EncryptedJSONField", "EncryptedTextField"]

ROW_FIELD = "public_id"
_SEALS = "_encrypted_field_seals"


class Ciphertext(str):
    """A stored ``v1.`` token, as opposed to a plaintext ``str``.

    ``row`` is the ``public_id`` of the row it was loaded with, when known, so a token carried
    to a copy of the row (``pk = None``, new ``public_id``, ``save()``) is re-encrypted for the
    copy instead of being written where it can no longer decrypt.
    """

    row: str | None = None


@dataclass(frozen=True, slots=True)
class _Seal:
    """What a field last read or wrote for an instance: the token and the plaintext it holds."""

    token: str
    row: str
    plaintext: str


def _seals(instance: models.Model) -> dict[str, _Seal]:
    seals = instance.__dict__.get(_SEALS)
    if seals is None:
        seals = instance.__dict__[_SEALS] = {}
    return seals


def _row_id(instance: models.Model) -> str:
    row = getattr(instance, ROW_FIELD, None)
    if row is None or row == "":
        raise ValueError(
            f"{type(instance).__name__} has no {ROW_FIELD}: encrypted fields bind each value to "
            "its row's public id, which must be set before the value is encrypted"
        )
    return str(row)


class _EncryptedAttribute(DeferredAttribute):
    """Decrypts the stored token on first access, using the instance's ``public_id``.

    A data descriptor (it defines ``__set__``), unlike Django's ``DeferredAttribute``: otherwise
    the value in ``instance.__dict__`` would shadow it and the token would be returned as is.
    """

    field: EncryptedField

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Ciphertext):
            return self.field.unseal(instance, value)
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


_encrypted_attnames: dict[type[models.Model], tuple[str, ...]] = {}


def _bind_loaded_tokens(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    """``post_init``: remember which row each loaded token belongs to (see ``Ciphertext``)."""
    row = instance.__dict__.get(ROW_FIELD)
    if row is None:
        return
    attnames = _encrypted_attnames.get(sender)
    if attnames is None:
        attnames = _encrypted_attnames[sender] = tuple(
            field.attname
            for field in sender._meta.concrete_fields
            if isinstance(field, EncryptedField)
        )
    for attname in attnames:
        value = instance.__dict__.get(attname)
        if isinstance(value, Ciphertext) and value.row is None:
            value.row = str(row)


class _EncryptedExact(Exact):
    """``field=None`` becomes ``isnull``; any other equality on ciphertext is refused."""

    def get_prep_lookup(self) -> Any:
        if self.rhs is not None:
            raise FieldError(self.lhs.output_field.lookup_refusal("exact"))
        return super().get_prep_lookup()


class EncryptedField(models.TextField):
    """Base of the encrypted fields (a TEXT column); subclasses say how values become text."""

    descriptor_class = _EncryptedAttribute
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    # --- how a Python value becomes the plaintext string that is encrypted ----------------

    def to_plaintext(self, value: Any) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_plaintext(self, plaintext: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- binding ------------------------------------------------------------------------

    def contribute_to_class(
        self, cls: type[models.Model], name: str, private_only: bool = False
    ) -> None:
        super().contribute_to_class(cls, name, private_only=private_only)
        if not cls._meta.abstract:
            # One receiver per model: the dispatch uid makes repeated connections no-ops.
            signals.post_init.connect(
                _bind_loaded_tokens,
                sender=cls,
                weak=False,
                dispatch_uid=f"portal.crypto.fields:{cls._meta.label_lower}",
            )

    def associated_data_for(self, row: str) -> bytes:
        """The associated data of this field's value in the row whose ``public_id`` is ``row``."""
        opts = self.model._meta
        return associated_data(opts.app_label, str(opts.model_name), self.attname, row)

    def label_for(self, row: str) -> str:
        """Names the value in security events: no PHI, enough to find the row."""
        return f"{self.model._meta.label_lower}.{self.attname}:{row}"

    def unseal(self, instance: models.Model, token: Ciphertext) -> Any:
        """Decrypt ``token`` for ``instance`` (fail closed), cache and return the value."""
        row = token.row or _row_id(instance)
        plaintext = decrypt_text(
            str(token), associated_data=self.associated_data_for(row), label=self.label_for(row)
        )
        value = self.from_plaintext(plaintext)
        instance.__dict__[self.attname] = value
        _seals(instance)[self.attname] = _Seal(token=str(token), row=row, plaintext=plaintext)
        return value

    def seal(self, instance: models.Model) -> Ciphertext | None:
        """The token to store for ``instance``'s current value (encrypting only if needed)."""
        if self.attname in instance.__dict__:
            value = instance.__dict__[self.attname]
        else:
            value = getattr(instance, self.attname)
        if value is None:
            return None
        row = _row_id(instance)
        if isinstance(value, Ciphertext):
            if value.row is None or value.row == row:
                return value
            # Carried over from another row (a copy): re-bind it to this one.
            value = self.unseal(instance, value)
        plaintext = self.to_plaintext(value)
        seals = _seals(instance)
        seal = seals.get(self.attname)
        if seal is not None and seal.row == row and seal.plaintext == plaintext:
            return Ciphertext(seal.token)
        token = encrypt_text(plaintext, associated_data=self.associated_data_for(row))
        seals[self.attname] = _Seal(token=token, row=row, plaintext=plaintext)
        return Ciphertext(token)

    # --- Django field API ------------------------------------------------------------------

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        return self.seal(model_instance)

    def from_db_value(
        self, value: str | None, expression: Any, connection: BaseDatabaseWrapper
    ) -> Ciphertext | None:
        return None if value is None else Ciphertext(value)

    def get_db_prep_save(self, value: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None:
            return None
        if isinstance(value, Ciphertext):
            return str(value)
        raise TypeError(
            f"{self.model._meta.label}.{self.attname} is encrypted: a plaintext value can only be "
            "written through Model.save() or bulk_create(), which bind it to its row "
            "(QuerySet.update() and bulk_update() cannot; nor can a migration's column default: "
            "add the field with null=True, save every row in a data migration, then make it "
            "non-null)"
        )

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        return self.get_db_prep_save(value, connection)

    def value_to_string(self, obj: models.Model) -> str:
        """Serialisers (``dumpdata``) get the token: plaintext never lands in a fixture file."""
        token = self.seal(obj)
        return "" if token is None else str(token)

    def lookup_refusal(self, lookup_name: str) -> str:
        return (
            f"{self.model._meta.label}.{self.attname} is encrypted and cannot be used in a "
            f"{lookup_name!r} lookup (only isnull): compare a blind-index column instead"
        )

    def get_lookup(self, lookup_name: str) -> type[Lookup[Any]] | None:
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        if lookup_name == "exact":
            return _EncryptedExact
        raise FieldError(self.lookup_refusal(lookup_name))

    def get_transform(self, lookup_name: str) -> type[Transform] | None:
        raise FieldError(self.lookup_refusal(lookup_name))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        try:
            self.model._meta.get_field(ROW_FIELD)
        except FieldDoesNotExist:
            errors.append(
                checks.Error(
                    f"{type(self).__name__} needs a {ROW_FIELD!r} field on its model to bind "
                    "values to their row.",
                    hint="Inherit portal.core.models.BaseModel.",
                    obj=self,
                    id="portal_crypto.E001",
                )
            )
        if self.unique or getattr(self, "db_index", False) or self.primary_key:
            errors.append(
                checks.Error(
                    f"{type(self).__name__} cannot be unique, indexed or a primary key: the "
                    "column holds randomised ciphertext.",
                    hint="Add a blind-index column for equality look-ups.",
                    obj=self,
                    id="portal_crypto.E002",
                )
            )
        return errors


class EncryptedTextField(EncryptedField):
    """Text stored encrypted. Reads and writes ``str``; ``None`` is NULL when ``null=True``."""

    _pyi_private_set_type: str | None
    _pyi_private_get_type: str

    def to_plaintext(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(
                f"{self.model._meta.label}.{self.attname} takes str, not {type(value).__name__}"
            )
        return value

    def from_plaintext(self, plaintext: str) -> str:
        return plaintext


class EncryptedJSONField(EncryptedField):
    """A JSON-compatible value (dict, list, str, int, float, bool) stored encrypted.

    ``None`` is SQL NULL (with ``null=True``), never the JSON ``null``. Values are serialised
    strictly (no NaN/Infinity, no dates or Decimals: convert them first). Mutating the returned
    object in place and saving writes the change, as with ``JSONField``.
    """

    _pyi_private_set_type: Any
    _pyi_private_get_type: Any
    empty_strings_allowed = False

    def to_plaintext(self, value: Any) -> str:
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{self.model._meta.label}.{self.attname} takes JSON-compatible values: {error}"
            ) from None

    def from_plaintext(self, plaintext: str) -> Any:
        return json.loads(plaintext)

    def to_python(self, value: Any) -> Any:
        return value

    def formfield(self, **kwargs: Any) -> forms.Field | None:  # type: ignore[override]
        return super(models.TextField, self).formfield(**{"form_class": forms.JSONField, **kwargs})
