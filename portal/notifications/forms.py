from __future__ import annotations

from django import forms

from portal.notifications.models import EmailMode


class NotificationPreferenceForm(forms.Form):
    email_mode = forms.ChoiceField(
        label="E-mail me about updates",
        choices=EmailMode.choices,
        widget=forms.RadioSelect,
        help_text="Urgent updates are always e-mailed at once. E-mails never contain patient "
        "details: only the referral number and a link to sign in.",
    )
