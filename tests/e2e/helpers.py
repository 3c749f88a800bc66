"""Shared steps of the browser journeys."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.personas import Cast
from tests.portal.accounts.helpers import totp_code


def sign_in(page: Page, base_url: str, cast: Cast, persona: str) -> None:
    """Sign ``persona`` in through the real pages: password, then the TOTP step."""
    user = cast.user(persona)
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(cast[persona].password)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
    page.get_by_label("Code").fill(totp_code(cast[persona].totp_secret))
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name=f"Welcome, {user.get_full_name()}")).to_be_visible()
