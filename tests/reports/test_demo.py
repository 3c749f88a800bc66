"""seed_demo adds a realistic treatment course with a signed report, once; its PDF opens."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from referrals.models import Referral
from reports.models import Assessment, InfusionSession, ProgressReport
from tests.reports.helpers import pdf_text, report_pdf_bytes

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_a_course_with_a_signed_report_once() -> None:
    call_command("seed_demo", "--password", "demo-passphrase-2026", verbosity=0)
    call_command("seed_demo", "--password", "demo-passphrase-2026", verbosity=0)

    referral = Referral.objects.get(infusion_sessions__number=1)
    assert referral.status == "in_treatment"
    assert InfusionSession.objects.filter(referral=referral).count() == 7  # one held
    assert Assessment.objects.filter(referral=referral).count() == 9
    reports = list(ProgressReport.objects.filter(referral=referral).order_by("version"))
    # Two automatic reports (after infusions 3 and 6) and the one the clinician signed.
    assert [(r.version, r.status, r.trigger, r.is_signed) for r in reports] == [
        (1, "ready", "after_infusion", False),
        (2, "ready", "after_infusion", False),
        (3, "ready", "requested", True),
    ]
    signed = reports[2]
    summary = signed.summary
    assert (summary["infusions_completed"], summary["infusions_held"]) == (6, 1)
    phq9 = summary["instruments"]["phq9"]
    assert (phq9["baseline"], phq9["latest"], phq9["change_percent"]) == (19, 8, -58)
    assert (phq9["response"], phq9["remission"], phq9["time_to_response"]) == (True, False, 5)
    assert summary["flags"] == ["phq9_item9"]
    assert summary["status"] == "response"

    text = pdf_text(report_pdf_bytes(signed))
    assert "Marcus Bell" in text  # the patient
    assert "Central Florida Ketamine" in text
    assert "Dr. Emily Carter" in text
    assert "Response" in text
    assert "baseline 19 -> latest 8" in text
    assert "Methods" in text
    assert "Dashed lines 1-6: infusion dates" in text  # the chart
    assert "Signed by" in text
    assert "Dr. Daniel Okafor" in text
    assert "maintenance infusions every 4 weeks" in text
