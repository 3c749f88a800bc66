"""Portal forms: shape only. The rules (length, files, who may write where) are the services'."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.files.uploadedfile import UploadedFile

from messaging.models import BODY_MAX_LENGTH, SUBJECT_MAX_LENGTH
from messaging.services import MAX_ATTACHMENTS
from portal.accounts.models import Organization

ACCEPTED_FILES = ".pdf,.png,.jpg,.jpeg,.txt,application/pdf,image/png,image/jpeg,text/plain"


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented recipe); returns a list."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", MultipleFileInput(attrs={"multiple": True, "accept": ACCEPTED_FILES})
        )
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single_clean = super().clean
        if isinstance(data, list | tuple):
            files = [single_clean(item, initial) for item in data if item]
        else:
            files = [single_clean(data, initial)] if data else []
        if len(files) > MAX_ATTACHMENTS:
            raise forms.ValidationError(f"Attach at most {MAX_ATTACHMENTS} files.")
        return files


class MessageForm(forms.Form):
    body = forms.CharField(
        label="Message",
        required=False,
        strip=False,
        max_length=BODY_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Up to 20,000 characters. The practice's members and the clinic's care team "
        "read this conversation.",
    )
    attachments = MultipleFileField(
        label="Attachments",
        required=False,
        allow_empty_file=True,
        help_text=f"Optional: up to {MAX_ATTACHMENTS} PDF, PNG, JPEG or text files, 25 MB each.",
    )


class NewThreadForm(MessageForm):
    subject = forms.CharField(label="Subject", max_length=SUBJECT_MAX_LENGTH)
    practice = forms.ModelChoiceField(
        label="Practice",
        queryset=Organization.objects.none(),
        to_field_name="public_id",
        required=False,
    )

    field_order = ["subject", "practice", "body", "attachments"]

    def __init__(self, *args: Any, practices: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if practices is None:
            del self.fields["practice"]
        else:
            practice_field = cast("forms.ModelChoiceField[Organization]", self.fields["practice"])
            practice_field.queryset = practices
            practice_field.required = True


class RetentionPolicyForm(forms.Form):
    message_retention_days = forms.IntegerField(
        label="Keep messages for (days)",
        required=False,
        min_value=1,
        max_value=36_500,
        help_text="Messages older than this move to the archive. Leave empty to keep them.",
    )
    archive_grace_days = forms.IntegerField(
        label="Purge archived messages after (days)",
        min_value=0,
        max_value=3_650,
        initial=30,
    )
