"""A fake malware scanner for tests: flags the EICAR anti-virus test string, passes the rest.

``tests/conftest.py`` makes it ``settings.PORTAL_MALWARE_SCANNER`` for every test, so upload
tests anywhere can show that an infected file is refused.
"""

from __future__ import annotations

from typing import IO, Final

from portal.uploads import ScanResult

#: The standard EICAR test file (harmless; every anti-virus product detects it by design).
EICAR: Final = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
_OVERLAP: Final = len(EICAR) - 1


def eicar_scanner(file: IO[bytes]) -> ScanResult:
    """Reads the file in chunks (as a real scanner client would stream it) looking for EICAR."""
    tail = b""
    while chunk := file.read(64 * 1024):
        if EICAR in tail + chunk:
            return ScanResult(clean=False, signature="Eicar-Test-Signature")
        tail = chunk[-_OVERLAP:]
    return ScanResult(clean=True)


def failing_scanner(file: IO[bytes]) -> ScanResult:
    """A scanner whose daemon is down."""
    raise ConnectionError("clamd is not reachable")
