"""Portal forms for recording sessions and assessments and for signing a report.

The forms check shapes (numbers are numbers, a row is complete); the services check the rules
and ranges and their errors are shown on the same fields (``apply_service_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from django import forms

from portal.clinical.scoring import INSTRUMENTS
from reports import services
from reports.models import Instrument, ReportKind, Route, SessionStatus

VITALS_ROWS: Final = 5
ADVERSE_EVENT_ROWS: Final = 2
VITALS_FIELDS: Final = ("minute", "systolic", "diastolic", "heart_rate", "spo2")
VITALS_LABELS: Final = {
    "minute": "Minute",
    "systolic": "Systolic BP (mmHg)",
    "diastolic": "Diastolic BP (mmHg)",
    "heart_rate": "Heart rate (/min)",
    "spo2": "SpO2 (%)",
}
EVENT_FIELDS: Final = ("term", "severity", "onset", "resolution", "action")
LOCAL_DATETIME: Final = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format=LOCAL_DATETIME)


def _local_datetime_field(label: str, help_text: str) -> forms.DateTimeField:
    # Entered in the clinic's time zone (settings.TIME_ZONE), which Django makes aware.
    return forms.DateTimeField(
        label=label,
        input_formats=[LOCAL_DATETIME, "%Y-%m-%d %H:%M"],
        widget=LocalDateTimeInput(),
        help_text=help_text,
    )


def apply_service_errors(form: forms.Form, fields: Mapping[str, str], detail: str) -> None:
    """Show a service's ``{"vitals.0.systolic": message}`` errors on the form's fields."""
    shown = False
    for path, message in fields.items():
        name = path.replace(".", "_")
        if name in form.fields:
            form.add_error(name, message)
            shown = True
    if not shown:
        form.add_error(None, detail)


class InfusionSessionForm(forms.Form):
    started_at = _local_datetime_field("Start", "Date and time the session started.")
    status = forms.ChoiceField(
        label="Session", choices=SessionStatus.choices, initial=SessionStatus.COMPLETED
    )
    status_reason = forms.CharField(
        label="Reason held or stopped",
        required=False,
        max_length=services.REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    weight_kg = forms.DecimalField(label="Weight (kg)", max_digits=5, decimal_places=1)
    dose_mg_per_kg = forms.DecimalField(
        label="Dose (mg/kg)", max_digits=4, decimal_places=2, required=False
    )
    duration_minutes = forms.IntegerField(label="Duration (minutes)", required=False)
    route = forms.ChoiceField(label="Route", choices=Route.choices, initial=Route.IV)
    cadss_peak = forms.IntegerField(label="CADSS peak", required=False)
    dose_change_reason = forms.CharField(
        label="Dose change and why",
        required=False,
        max_length=services.REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for row in range(VITALS_ROWS):
            for name in VITALS_FIELDS:
                self.fields[f"vitals_{row}_{name}"] = forms.IntegerField(
                    label=VITALS_LABELS[name], required=False
                )
        for row in range(ADVERSE_EVENT_ROWS):
            self.fields[f"adverse_events_{row}_term"] = forms.CharField(
                label="Event", required=False, max_length=services.TERM_MAX
            )
            self.fields[f"adverse_events_{row}_severity"] = forms.ChoiceField(
                label="Severity",
                required=False,
                choices=[("", "-"), *((s, s.title()) for s in services.SEVERITIES)],
            )
            self.fields[f"adverse_events_{row}_onset"] = forms.IntegerField(
                label="Onset (minute)", required=False
            )
            self.fields[f"adverse_events_{row}_resolution"] = forms.CharField(
                label="Resolution", required=False, max_length=services.SHORT_TEXT_MAX
            )
            self.fields[f"adverse_events_{row}_action"] = forms.CharField(
                label="Action taken", required=False, max_length=services.SHORT_TEXT_MAX
            )

    def vitals_rows(self) -> list[list[forms.BoundField]]:
        return [
            [self[f"vitals_{row}_{name}"] for name in VITALS_FIELDS] for row in range(VITALS_ROWS)
        ]

    def event_rows(self) -> list[list[forms.BoundField]]:
        return [
            [self[f"adverse_events_{row}_{name}"] for name in EVENT_FIELDS]
            for row in range(ADVERSE_EVENT_ROWS)
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for row in range(VITALS_ROWS):
            values = [cleaned.get(f"vitals_{row}_{name}") for name in VITALS_FIELDS]
            if any(v is not None for v in values) and any(v is None for v in values):
                for name, value in zip(VITALS_FIELDS, values, strict=True):
                    if value is None:
                        self.add_error(f"vitals_{row}_{name}", "Complete the reading.")
        for row in range(ADVERSE_EVENT_ROWS):
            term = cleaned.get(f"adverse_events_{row}_term") or ""
            others = [
                cleaned.get(f"adverse_events_{row}_{name}")
                for name in ("severity", "onset", "resolution", "action")
            ]
            if not term and any(v not in (None, "") for v in others):
                self.add_error(f"adverse_events_{row}_term", "Name the event.")
        return cleaned

    def to_input(self) -> services.SessionInput:
        data = self.cleaned_data
        vitals = [
            services.VitalsReading(**{name: data[f"vitals_{row}_{name}"] for name in VITALS_FIELDS})
            for row in range(VITALS_ROWS)
            if data.get(f"vitals_{row}_minute") is not None
        ]
        events = [
            services.AdverseEvent(
                term=data[f"adverse_events_{row}_term"],
                severity=data.get(f"adverse_events_{row}_severity") or "",
                action=data.get(f"adverse_events_{row}_action") or "",
                onset=data.get(f"adverse_events_{row}_onset"),
                resolution=data.get(f"adverse_events_{row}_resolution") or "",
            )
            for row in range(ADVERSE_EVENT_ROWS)
            if data.get(f"adverse_events_{row}_term")
        ]
        return services.SessionInput(
            started_at=data["started_at"],
            weight_kg=data["weight_kg"],
            dose_mg_per_kg=data.get("dose_mg_per_kg"),
            duration_minutes=data.get("duration_minutes"),
            route=data["route"],
            status=data["status"],
            status_reason=data.get("status_reason") or "",
            vitals=tuple(vitals),
            cadss_peak=data.get("cadss_peak"),
            adverse_events=tuple(events),
            dose_change_reason=data.get("dose_change_reason") or "",
        )


class InstrumentChoiceForm(forms.Form):
    instrument = forms.ChoiceField(label="Instrument", choices=Instrument.choices)


CSSRS_CHOICES: Final = [("", "Choose"), ("yes", "Yes"), ("no", "No"), ("skipped", "Skipped")]


class AssessmentForm(forms.Form):
    """One answer field per item of ``instrument`` ("Item 1", ...); the wording of the items
    lives with the questionnaires the clinic licenses, not in the code."""

    taken_at = _local_datetime_field("Taken", "Date and time the assessment was taken.")

    def __init__(self, *args: Any, instrument: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instrument = instrument
        spec = INSTRUMENTS[instrument]
        for number in range(1, spec.item_count + 1):
            if spec.kind == "yes_no":
                field: forms.Field = forms.ChoiceField(
                    label=f"Item {number}", choices=CSSRS_CHOICES, required=True
                )
            else:
                field = forms.TypedChoiceField(
                    label=f"Item {number}",
                    choices=[("", "Choose"), *((str(v), str(v)) for v in range(spec.item_max + 1))],
                    coerce=int,
                    required=True,
                )
            self.fields[f"item_{number}"] = field

    def item_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith("item_")]

    def answers(self) -> list[Any]:
        spec = INSTRUMENTS[self.instrument]
        values = [self.cleaned_data[f"item_{n}"] for n in range(1, spec.item_count + 1)]
        if spec.kind == "yes_no":
            return [{"yes": True, "no": False}.get(value) for value in values]
        return values


class ReportRequestForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", choices=ReportKind.choices, initial=ReportKind.INTERIM)


class ReportSignForm(forms.Form):
    interpretation = forms.CharField(
        label="Interpretation and recommendations",
        max_length=services.INTERPRETATION_MAX,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Written by you and printed in the signed report with your name and the time.",
    )
