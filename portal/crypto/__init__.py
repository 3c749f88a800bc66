"""Envelope encryption for PHI at rest (AES-256-GCM).

Import the submodules directly; this package deliberately exports nothing. The core is pure
Python with no Django imports:

- ``portal.crypto.keyring``: key-encryption keys (KEKs) and the keyring parsed from configuration.
- ``portal.crypto.envelope``: per-value data keys (DEKs) wrapped by a KEK, the ``v1.`` token format.
- ``portal.crypto.streams``: chunked file encryption for attachments and reports.
- ``portal.crypto.blind_index``: keyed HMAC indexes for equality look-ups on encrypted fields.
- ``portal.crypto.errors``: the exception hierarchy (re-exported by ``envelope``).

The Django side (app label ``crypto``) builds on it:

- ``portal.crypto.keys``: the keyring and blind-index key from settings (never ``SECRET_KEY``).
- ``portal.crypto.values``: ``encrypt_text`` / ``decrypt_text``; every decryption failure is
  recorded as a security event through ``report_decryption_failure``.
- ``portal.crypto.fields``: ``EncryptedTextField`` and ``EncryptedJSONField``.
- ``portal.crypto.storage``: ``store_encrypted_file`` / ``open_encrypted_file`` and the
  ``EncryptedFile`` registry (``portal.crypto.models``).
- ``portal.crypto.rotation`` and ``manage.py rotate_keys``: re-wrapping under a new KEK.
"""
