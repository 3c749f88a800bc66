"""Journey: open the portal, see the sign-in page, sign in as a demo user (password, then the
code from the authenticator app holding the demo TOTP key that seed_demo prints)."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from portal.accounts.management.commands.seed_demo import demo_totp_secret
from tests.portal.accounts.helpers import totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_demo_user_signs_in(page: Page, live_server: object) -> None:
    call_command("seed_demo", "--password", "journey-passphrase-2026", verbosity=0)

    page.goto(f"{live_server}/")

    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("heading", name="Sign In")).to_be_visible()
    page.get_by_label("Email").fill("pcp@lakeside.example")
    page.get_by_label("Password").fill("journey-passphrase-2026")
    page.get_by_role("button", name="Sign In").click()

    expect(page.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
    page.get_by_label("Code").fill(totp_code(demo_totp_secret("pcp@lakeside.example")))
    page.get_by_role("button", name="Sign In").click()

    expect(page.get_by_role("heading", name="Welcome, Dr. Emily Carter")).to_be_visible()
    expect(page.get_by_text("Lakeside Family Medicine")).to_be_visible()


def test_a_wrong_password_keeps_the_user_on_the_sign_in_page(
    page: Page, live_server: object
) -> None:
    call_command("seed_demo", "--password", "journey-passphrase-2026", verbosity=0)

    page.goto(f"{live_server}/accounts/login/")
    page.get_by_label("Email").fill("pcp@lakeside.example")
    page.get_by_label("Password").fill("not-the-password-at-all")
    page.get_by_role("button", name="Sign In").click()

    expect(page.get_by_text("not correct")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
