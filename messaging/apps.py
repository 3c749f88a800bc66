from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    label = "messaging"
    verbose_name = "Secure messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Referrals cannot import messaging (dependencies point portal <- referrals <- messaging),
        # so messaging hooks itself in: every timeline event creates the referral's thread (on
        # "created") and posts a system message; the referral detail shows the thread's id.
        from messaging import handlers
        from referrals.hooks import (
            register_referral_event_handler,
            register_referral_thread_resolver,
        )

        register_referral_event_handler(handlers.on_referral_event)
        register_referral_thread_resolver(handlers.referral_thread_public_id)
