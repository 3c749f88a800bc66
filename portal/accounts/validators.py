"""Validators for identity data."""

from django.core.exceptions import ValidationError

# The NPI check digit is the Luhn digit of the 9 leading digits prefixed with the card-issuer
# prefix 80840 (CMS, "NPI Check Digit").
NPI_LUHN_PREFIX = "80840"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def npi_is_valid(value: str) -> bool:
    return (
        len(value) == 10
        and value.isascii()
        and value.isdigit()
        and luhn_valid(NPI_LUHN_PREFIX + value)
    )


def validate_npi(value: str) -> None:
    if not npi_is_valid(value):
        raise ValidationError(
            "Enter a valid 10-digit NPI (its last digit is a check digit).", code="invalid_npi"
        )
