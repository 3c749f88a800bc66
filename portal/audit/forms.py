"""Filter form of the audit trail page."""

from __future__ import annotations

from django import forms

from portal.audit.selectors import AuditEventFilters

OBJECT_TYPE_REGEX = r"^[a-z][a-z0-9_]*$"


class AuditEventFilterForm(forms.Form):
    actor = forms.UUIDField(required=False, label="User (public id)")
    object_type = forms.RegexField(
        OBJECT_TYPE_REGEX, max_length=64, required=False, label="Object type"
    )
    object_id = forms.CharField(max_length=64, required=False, label="Object id")
    referral = forms.UUIDField(required=False, label="Referral (public id)")
    patient = forms.UUIDField(required=False, label="Patient (public id)")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def filters(self) -> AuditEventFilters:
        data = self.cleaned_data
        return AuditEventFilters(
            actor=data.get("actor"),
            object_type=data.get("object_type") or "",
            object_id=data.get("object_id") or "",
            referral=data.get("referral"),
            patient=data.get("patient"),
        )
