"""Passwords: at least 12 characters, long passphrases welcome, common ones refused, no
composition rules, Argon2id hashes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from portal import settings as project_settings
from tests.factories import UserFactory


@pytest.mark.django_db
def test_new_passwords_are_hashed_with_argon2id(settings: Any) -> None:
    settings.PASSWORD_HASHERS = project_settings.PASSWORD_HASHERS

    user = UserFactory.create(password="a perfectly fine passphrase")

    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password("a perfectly fine passphrase")


@pytest.mark.parametrize(
    "password",
    [
        "twelve chars",
        "all lower case words and nothing else at all",
        "Ünïcödé pässphräse wïth àccents",
        "x" * 12 + "y" * 500,
    ],
)
def test_long_passwords_without_composition_rules_are_accepted(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("elevenchars", "at least 12 characters"),
        ("password1234", "too common"),
        ("qwertyuiop123", "too common"),
    ],
)
def test_short_and_common_passwords_are_refused(password: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_password(password)
