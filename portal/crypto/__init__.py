"""Envelope encryption for PHI at rest (AES-256-GCM), pure Python with no Django imports.

Import the submodules directly; this package deliberately exports nothing:

- ``portal.crypto.keyring``: key-encryption keys (KEKs) and the keyring parsed from configuration.
- ``portal.crypto.envelope``: per-value data keys (DEKs) wrapped by a KEK, the ``v1.`` token format.
- ``portal.crypto.streams``: chunked file encryption for attachments and reports.
- ``portal.crypto.blind_index``: keyed HMAC indexes for equality look-ups on encrypted fields.
- ``portal.crypto.errors``: the exception hierarchy (re-exported by ``envelope``).
"""
