"""Journeys: accept an invitation, enrol TOTP, sign out, sign in with a TOTP code; add a security
key (a virtual WebAuthn authenticator); all under the strict CSP with no violation reported."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail
from playwright.sync_api import ConsoleMessage, Page, expect

from portal.accounts import services
from portal.accounts.models import Role
from tests.factories import ClinicFactory, MembershipFactory, OrganizationFactory
from tests.personas import enrol_totp
from tests.portal.accounts.helpers import totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long passphrase for the clinic"
LINK = re.compile(r"https?://[^/\s]+(/accounts/invitations/accept/[A-Za-z0-9_-]+/)")


@pytest.fixture
def csp_violations(page: Page) -> list[str]:
    """Console messages that report a Content-Security-Policy violation."""
    violations: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(message.text)

    page.on("console", record)
    return violations


def send_invitation() -> str:
    admin = MembershipFactory.create(
        organization=ClinicFactory.create(name="Central Florida Ketamine"),
        role=Role.CLINIC_ADMIN,
    ).user
    enrol_totp(admin)
    practice = OrganizationFactory.create(name="Lakeside Family Medicine")
    services.invitation_create(
        actor=admin, organization=practice, email="sam@lakeside.example", role="practice_staff"
    )
    match = LINK.search(str(mail.outbox[-1].body))
    assert match is not None
    return match.group(1)


def test_accept_an_invitation_enrol_totp_sign_out_and_sign_in_with_a_code(
    page: Page, live_server: object, csp_violations: list[str]
) -> None:
    path = send_invitation()

    page.goto(f"{live_server}{path}")
    expect(page).to_have_url(re.compile(r"/accounts/invitations/accept/$"))
    expect(page.get_by_role("heading", name="Join Lakeside Family Medicine")).to_be_visible()
    page.get_by_label("Full name").fill("Sam Staff")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()

    expect(page).to_have_url(re.compile(r"/accounts/2fa/$"))
    expect(
        page.get_by_role("heading", name="Set up two-factor authentication to continue")
    ).to_be_visible()
    page.get_by_role("link", name="Activate").click()

    expect(page.get_by_role("heading", name="Activate Authenticator App")).to_be_visible()
    expect(page.get_by_role("img")).to_be_visible()
    secret = page.get_by_label("Authenticator secret").input_value()
    page.get_by_label("Authenticator code").fill(totp_code(secret))
    page.get_by_role("button", name="Activate").click()

    expect(page.get_by_role("heading", name="Recovery Codes")).to_be_visible()
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.get_by_role("heading", name="Welcome, Sam Staff")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.goto(f"{live_server}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    page.get_by_label("Email").fill("sam@lakeside.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Sign In").click()

    expect(page.get_by_role("heading", name="Welcome, Sam Staff")).to_be_visible()
    expect(page.get_by_text("Lakeside Family Medicine")).to_be_visible()
    assert csp_violations == []


def test_add_a_security_key_with_a_virtual_authenticator(
    page: Page, live_server: object, csp_violations: list[str]
) -> None:
    path = send_invitation()
    # Chromium's virtual authenticator stands in for a USB security key.
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    page.goto(f"{live_server}{path}")
    page.get_by_label("Full name").fill("Sam Staff")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/$"))

    page.get_by_role("link", name="Add").click()
    expect(page.get_by_role("heading", name="Add Security Key")).to_be_visible()
    page.get_by_role("button", name="Add", exact=True).click()

    expect(page.get_by_role("heading", name="Recovery Codes")).to_be_visible()
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.get_by_role("heading", name="Welcome, Sam Staff")).to_be_visible()
    assert Authenticator.objects.filter(
        user__email="sam@lakeside.example", type=Authenticator.Type.WEBAUTHN
    ).exists()
    assert csp_violations == []
