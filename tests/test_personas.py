from __future__ import annotations

from allauth.mfa.utils import is_mfa_enabled

from tests.personas import ALL_PERSONAS, Cast


def test_the_cast_has_every_persona_with_mfa(cast: Cast) -> None:
    assert tuple(cast.personas) == ALL_PERSONAS
    assert cast["anonymous"].user is None
    for name in ALL_PERSONAS[:-1]:
        assert is_mfa_enabled(cast.user(name))
    assert cast["outsider"].membership is not None
    assert cast["outsider"].membership.organization == cast.other_practice
    assert cast["staff"].membership is not None
    assert cast["staff"].membership.role == "practice_staff"
