"""``make bench`` is not a test; this only checks that its script imports and reads its options,
and that the load client computes the TOTP codes allauth accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, generate_totp_secret, hotp_value

from bench import load, make_bench


def test_the_defaults_are_the_issues_volume_and_scale() -> None:
    arguments = make_bench.build_parser().parse_args([])

    assert arguments.users == 50
    assert (arguments.referrals, arguments.messages, arguments.reports) == (20_000, 500_000, 5_000)
    assert arguments.small_referrals == 200
    assert arguments.rounds == 3
    assert arguments.skip_micro is False
    assert arguments.output.name == "BENCHMARKS.md"


def test_options_are_parsed() -> None:
    arguments = make_bench.build_parser().parse_args(
        ["--phase-seconds", "12", "--users", "5", "--skip-micro", "--output", "out/b.md"]
    )

    assert arguments.phase_seconds == 12.0
    assert arguments.users == 5
    assert arguments.skip_micro is True
    assert arguments.output == Path("out/b.md")


def test_a_bad_option_is_refused() -> None:
    with pytest.raises(SystemExit):
        make_bench.build_parser().parse_args(["--users", "many"])


def test_the_database_name_comes_from_the_url() -> None:
    assert make_bench.database_name("postgres://postgres@127.0.0.1:5432/bench") == "bench"
    assert (
        make_bench.with_database("postgres://postgres@127.0.0.1:5432/bench", "bench_small")
        == "postgres://postgres@127.0.0.1:5432/bench_small"
    )
    with pytest.raises(SystemExit):
        make_bench.database_name("postgres://postgres@127.0.0.1:5432/bench;drop")


def test_the_load_clients_totp_codes_are_allauths() -> None:
    secret = generate_totp_secret()
    moment = 1_790_000_000.0

    assert load.totp(secret, moment) == format_hotp_value(hotp_value(secret, int(moment) // 30))
