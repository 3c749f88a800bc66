from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CoreConfig(AppConfig):
    name = "portal.core"
    label = "core"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from allauth.mfa.models import Authenticator

        from portal.accounts.models import Membership, User
        from portal.core.request_cache import forget_all

        # What the request cache remembers is derived from these rows (see its docstring).
        for model in (Membership, User, Authenticator):
            for signal in (post_save, post_delete):
                signal.connect(forget_all, sender=model, dispatch_uid=f"request-cache-{model}")
