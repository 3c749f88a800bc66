"""The registry of encrypted files: what ``rotate_keys`` walks to re-wrap every file's data key."""

from django.db import models

from portal.core.models import BaseModel


class EncryptedFile(BaseModel):
    """One file written by ``portal.crypto.storage.store_encrypted_file``.

    Holds no PHI: the random storage name, the purpose and owner id the file is bound to, the
    plaintext size and SHA-256, and the id of the key-encryption key its data key is wrapped
    under (so rotation selects the files still on an old key without opening every file).
    """

    name = models.CharField(max_length=120, unique=True)
    purpose = models.CharField(max_length=40)
    owner_id = models.CharField(max_length=64)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    key_id = models.CharField(max_length=32, db_index=True)

    def __str__(self) -> str:
        return self.name
