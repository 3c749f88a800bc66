from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "portal.accounts"
    label = "accounts"
    verbose_name = "Accounts and organisations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the authentication signal receivers.
        from portal.accounts import receivers  # noqa: F401
