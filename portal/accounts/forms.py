"""Forms of the identity pages. They check shape; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import (
    password_validators_help_text_html,
    validate_password,
)
from django.db.models import QuerySet

from portal.accounts.models import Organization, Role, User
from portal.accounts.validators import validate_npi


class OrganizationChoiceField(forms.ModelChoiceField[Organization]):
    def label_from_instance(self, obj: Organization) -> str:
        return f"{obj.name} ({obj.get_kind_display().lower()})"


class InvitationCreateForm(forms.Form):
    organization = OrganizationChoiceField(
        queryset=Organization.objects.none(),
        to_field_name="public_id",
        label="Organisation",
        empty_label=None,
    )
    role = forms.ChoiceField(choices=Role.choices, label="Role")
    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    full_name = forms.CharField(label="Full name (optional)", max_length=200, required=False)
    npi = forms.CharField(
        label="NPI (providers only)",
        max_length=10,
        required=False,
        validators=[validate_npi],
        help_text="The provider's 10-digit National Provider Identifier.",
    )

    def __init__(self, *args: Any, organizations: QuerySet[Organization], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["organization"]
        if isinstance(field, OrganizationChoiceField):
            field.queryset = organizations


class PracticeCreateForm(forms.Form):
    name = forms.CharField(label="Practice name", max_length=200)


class InvitationAcceptForm(forms.Form):
    """Choosing the name and password of a new account."""

    full_name = forms.CharField(
        label="Full name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password (again)",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        self.email = email
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password1 = cleaned.get("password1")
        password2 = cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", "The two passwords differ.")
        elif password1:
            candidate = User(email=self.email, full_name=cleaned.get("full_name", ""))
            try:
                validate_password(password1, user=candidate)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class SessionEndForm(forms.Form):
    session = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
