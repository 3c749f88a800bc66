"""Journey: the provider asks a question in the referral's conversation, the coordinator sees the
unread count, opens the conversation and replies, and the provider sees the reply without
reloading (htmx polling with ``since``). Both sign in through the real login and TOTP step."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from messaging.models import Thread
from referrals import services as referral_services
from tests.e2e.helpers import sign_in
from tests.personas import Cast
from tests.referrals.factories import complete_referral_data

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = "Could the patient be seen this week? She is driving in from Ocala."
REPLY = "Yes: Thursday at 10:00. We will call her today to confirm."


def is_read_marker(response: Response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/read/")


def unread_badge(page: Page, thread: Thread) -> Any:
    return page.locator(f'tr[data-thread="{thread.public_id}"] td.unread-count .badge')


def test_provider_asks_coordinator_replies_provider_sees_it_live(
    browser: Browser, live_server: Any, cast: Cast
) -> None:
    base_url = str(live_server)
    referral = referral_services.referral_create(
        actor=cast.user("provider"), data=complete_referral_data()
    )
    referral_services.referral_submit(actor=cast.user("provider"), referral=referral)
    thread = Thread.objects.get(referral=referral)
    provider_context = browser.new_context()
    coordinator_context = browser.new_context()
    provider = provider_context.new_page()
    coordinator = coordinator_context.new_page()

    # The provider opens the referral's conversation and asks.
    sign_in(provider, base_url, cast, "provider")
    provider.locator("#messages-nav").click()
    provider.get_by_role("link", name=f"Referral {referral.number}").click()
    expect(provider.get_by_role("heading", name=f"Referral {referral.number}")).to_be_visible()
    expect(provider.get_by_text(f"Referral {referral.number} submitted by")).to_be_visible()
    provider.get_by_label("Message").fill(QUESTION)
    provider.get_by_role("button", name="Send").click()
    expect(provider.locator("#message-list").get_by_text(QUESTION)).to_be_visible()
    expect(provider.get_by_label("Message")).to_have_value("")
    # Marks this document: a reload would lose it.
    provider.evaluate("window.journeyMarker = 'still the same page'")

    # The coordinator sees two unread (the submission and the question), opens, replies.
    sign_in(coordinator, base_url, cast, "coordinator")
    expect(coordinator.locator("#messages-nav .badge")).to_have_text("2")
    coordinator.locator("#messages-nav").click()
    expect(unread_badge(coordinator, thread)).to_have_text("2")
    coordinator.get_by_role("link", name=f"Referral {referral.number}").click()
    expect(coordinator.locator("#message-list").get_by_text(QUESTION)).to_be_visible()
    coordinator.get_by_label("Message").fill(REPLY)
    with provider.expect_response(is_read_marker, timeout=20_000) as read_marked:
        coordinator.get_by_role("button", name="Send").click()
        expect(coordinator.locator("#message-list").get_by_text(REPLY)).to_be_visible()

        # The provider's open page shows the reply without reloading, and marks it read.
        expect(provider.locator("#message-list").get_by_text(REPLY)).to_be_visible(timeout=15_000)
    assert read_marked.value.status == 204
    assert provider.evaluate("window.journeyMarker") == "still the same page"
    expect(provider.locator("#message-list > li")).to_have_count(3)

    # Both read everything they saw: the inbox shows no unread for either.
    coordinator.locator("#messages-nav").click()
    expect(coordinator).to_have_url(re.compile(r"/messages/$"))
    expect(unread_badge(coordinator, thread)).to_have_count(0)
    provider.locator("#messages-nav").click()
    expect(unread_badge(provider, thread)).to_have_count(0)
    provider_context.close()
    coordinator_context.close()
