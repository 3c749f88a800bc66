from django.apps import AppConfig


class CryptoConfig(AppConfig):
    """The Django side of ``portal.crypto``: the encrypted-file registry and ``rotate_keys``."""

    name = "portal.crypto"
    label = "crypto"
    verbose_name = "Encryption"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from rest_framework import serializers

        from portal.crypto.fields import EncryptedJSONField

        # EncryptedJSONField is a TEXT column underneath; a ModelSerializer must still see JSON.
        serializers.ModelSerializer.serializer_field_mapping[EncryptedJSONField] = (
            serializers.JSONField
        )
