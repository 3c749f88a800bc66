"""An anonymous walk over the whole URL conf: every route needs authentication unless allow-listed.

The routes come from the URL resolver itself, with placeholder values for their parameters, so a
route any app adds later is walked without touching this file. An anonymous GET and POST must be
sent to the sign-in page (pages) or answered 401/403 (APIs). The allow-list names the routes that
exist for people who are not signed in yet, and why.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

PLACEHOLDER_UUID = str(uuid.UUID(int=0x0123456789ABCDEF0123456789ABCDEF))
# Values tried, in order, for a regular-expression group of a route.
REGEX_SAMPLES = ("1", "abc", "1-abc", "auth", "x")

# View names (namespace:name) open to anonymous visitors, with the reason.
ALLOW_LIST = {
    "healthz": "liveness probe",
    "readyz": "readiness probe",
    "account_login": "sign in",
    "account_reset_password": "password reset request",
    "account_reset_password_done": "password reset: 'check your mail' page",
    "account_reset_password_from_key": "password reset link",
    "account_reset_password_from_key_done": "password reset: done page",
    "account_signup": "says that sign-up is closed (accounts come by invitation)",
    "account_inactive": "says that the account is inactive (where a refused sign-in lands)",
    "account_email_verification_sent": "allauth's static 'we sent you an e-mail' page",
    "account_confirm_email": "allauth's e-mail confirmation link ('invalid link' without a key)",
    "invitation_accept_token": "the e-mailed invitation link",
    "invitation_accept": "accepting an invitation (creates the account)",
    # allauth's headless API: configuration and the sign-in steps themselves.
    "headless:browser:config": "headless configuration",
    "headless:app:config": "headless configuration",
}
HEADLESS_ANONYMOUS_VIEWS = {
    "account:login",
    "account:current_session",
    "account:signup",
    "account:request_password_reset",
    "account:reset_password",
    "account:confirm_login_code",
    "account:verify_email",
    "account:resend_email_verification_code",
    "account:verify_phone",
    "account:resend_phone_verification_code",
    "mfa:authenticate",
    "mfa:authenticate_webauthn",
    # The e-mail and phone steps of allauth's verification flow; without a pending verification
    # an anonymous POST is answered 409 and a GET 401.
    "account:manage_email",
    "account:manage_phone",
}
for _client in ("browser", "app"):
    for _view in HEADLESS_ANONYMOUS_VIEWS:
        ALLOW_LIST[f"headless:{_client}:{_view}"] = "a step of signing in over the headless API"
ALLOW_LIST["headless:app:tokens:refresh"] = "exchanging a refresh token (app clients)"
if settings.API_DOCS_PUBLIC:
    ALLOW_LIST["api-schema"] = "API_DOCS_PUBLIC is on (development default)"
    ALLOW_LIST["api-docs"] = "API_DOCS_PUBLIC is on (development default)"


@dataclass(frozen=True)
class Route:
    path: str
    view_name: str


def _fill_regex(regex: str) -> str:
    def sample(match: re.Match[str]) -> str:
        body = match.group(2)
        for candidate in REGEX_SAMPLES:
            if re.fullmatch(body, candidate):
                return candidate
        raise AssertionError(f"no sample value matches the URL group {body!r}")

    filled = re.sub(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)", sample, regex)
    return filled.removeprefix("^").removesuffix("$").replace("\\", "")


def _fill_route(route: str) -> str:
    def sample(match: re.Match[str]) -> str:
        converter = match.group(1) or "str"
        return {"int": "1", "uuid": PLACEHOLDER_UUID}.get(converter, "abc")

    return re.sub(r"<(?:(\w+):)?(\w+)>", sample, route)


def _fill(pattern: RoutePattern | RegexPattern | object) -> str:
    if isinstance(pattern, RegexPattern):
        return _fill_regex(pattern.regex.pattern)
    return _fill_route(str(pattern))


def all_routes() -> list[Route]:
    routes: list[Route] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str, namespace: str) -> None:
        for pattern in patterns:
            path = prefix + _fill(pattern.pattern)
            if isinstance(pattern, URLResolver):
                inner = namespace
                if pattern.namespace:
                    inner = f"{namespace}{pattern.namespace}:"
                walk(pattern.url_patterns, path, inner)
            else:
                name = f"{namespace}{pattern.name}" if pattern.name else path
                routes.append(Route("/" + path, name))

    walk(get_resolver().url_patterns, "", "")
    return routes


ROUTES = all_routes()


def test_the_walk_sees_the_whole_url_conf() -> None:
    names = {route.view_name for route in ROUTES}
    for expected in ("dashboard", "me", "account_login", "mfa_index", "invitation_list"):
        assert expected in names
    assert any(route.path.startswith("/admin/") for route in ROUTES)
    assert any(PLACEHOLDER_UUID in route.path for route in ROUTES)
    assert set(ALLOW_LIST) - names == set()


def _ends_at_sign_in(client: Client, location: str) -> bool:
    """Follow a few redirects: /admin/ sends to /admin/login/, which sends to allauth's."""
    for _hop in range(3):
        if location.startswith("/accounts/login/"):
            return True
        response = client.get(location)
        if response.status_code != 302:
            return False
        location = response["Location"]
    return False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "route",
    [route for route in ROUTES if route.view_name not in ALLOW_LIST],
    ids=lambda route: f"{route.view_name} {route.path}",
)
def test_anonymous_cannot_reach_the_route(route: Route) -> None:
    client = Client()
    checked = 0
    for method in ("get", "post"):
        response = getattr(client, method)(route.path)
        status = response.status_code
        if status == 405:
            continue  # the view does not take this method: nothing ran
        checked += 1
        if route.path.startswith(("/api/", "/_allauth/")):
            assert status in {401, 403}, (method, status)
        else:
            assert status == 302, (method, status)
            assert _ends_at_sign_in(client, response["Location"]), (method, response["Location"])
    assert checked, "the route answered 405 to every method"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "route",
    [route for route in ROUTES if route.view_name in ALLOW_LIST],
    ids=lambda route: f"{route.view_name} {route.path}",
)
def test_allow_listed_routes_answer_anonymous_without_error(route: Route) -> None:
    client = Client()
    for method in ("get", "post"):
        assert getattr(client, method)(route.path).status_code < 500, method
