"""Who may review the audit trail."""

from __future__ import annotations

from portal.accounts.permissions import AnyUser, is_clinic_admin


def can_review_audit_trail(user: AnyUser | None) -> bool:
    """Clinic admins only. One deployment serves one clinic (DESIGN.md), so its admins see the
    whole trail, including what referring practices did."""
    return is_clinic_admin(user)
