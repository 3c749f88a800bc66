"""The load client of ``make bench``: virtual users over HTTP against the portal's gunicorn.

Standard library only (threads and ``http.client``), bounded in time and count, and only ever
talking to 127.0.0.1. Each virtual user is a thread that signs in through allauth's headless app
API (password, then a TOTP code it computes from the seeded secret) and then loops: pick an
operation by weight, send it, record status and latency, think for a random while, until the
phase ends. Sync gunicorn workers close the connection after each response, so every request
opens a new connection, as a client of such a server does.

Each virtual user sends ``X-Forwarded-For`` with an address of its own: the portal runs with
``TRUSTED_PROXY_COUNT=1`` as behind its TLS proxy, so per-IP rate limits see one client per
person instead of one for the whole benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import math
import random
import re
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
TIMEOUT_SECONDS = 120
APP_API = "/_allauth/app/v1"
TOTP_PERIOD = 30
TOTP_DIGITS = 6
TOTP_EDGE_SECONDS = 4.0

MESSAGE_BODY = (
    "Following up on the consult: the patient tolerated the last session well; could you "
    "confirm the plan for the next two weeks and whether the current dose stays the same?"
)

# Operation name -> what it is, for tables: the portal endpoint or its bare baseline.
LIST = "referral list"
DETAIL = "referral detail"
THREAD = "thread page"
SEND = "message send"
SUBMIT = "referral submit"
ACCEPT = "referral accept"
PDF = "report PDF"
BARE_LIST = "bare list"
BARE_DETAIL = "bare detail"
BARE_THREAD = "bare thread page"
BARE_SAVE = "bare message save"
PORTAL_OPERATIONS = (LIST, DETAIL, THREAD, SEND, SUBMIT, ACCEPT, PDF)
BARE_OPERATIONS = (BARE_LIST, BARE_DETAIL, BARE_THREAD, BARE_SAVE)

# Relative weights of the mix (per virtual user; submit and accept only for the roles that may).
WEIGHTS: dict[str, int] = {
    LIST: 12,
    DETAIL: 12,
    THREAD: 12,
    SEND: 8,
    PDF: 4,
    SUBMIT: 3,
    ACCEPT: 3,
    BARE_LIST: 6,
    BARE_DETAIL: 6,
    BARE_THREAD: 6,
    BARE_SAVE: 4,
}


def totp(secret: str, at: float) -> str:
    """RFC 6238 (SHA-1, 30 s, 6 digits), as allauth checks it."""
    key = base64.b32decode(secret.encode("ascii"), casefold=True)
    counter = struct.pack(">Q", int(at) // TOTP_PERIOD)
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**TOTP_DIGITS:0{TOTP_DIGITS}d}"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    *,
    token: str = "",
    body: Any = None,
    client_ip: str = "",
) -> Response:
    """One request on a new connection; the time covers connect to the last byte read."""
    headers = {"Accept": "application/json", "Connection": "close"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["X-Session-Token"] = token
    if client_ip:
        headers["X-Forwarded-For"] = client_ip
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=payload, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        status = answer.status
    except (OSError, http.client.HTTPException):
        status, data = 0, b""
    finally:
        connection.close()
    return Response(status, data, time.perf_counter() - started)


@dataclass(frozen=True)
class Login:
    token: str
    seconds: float
    password_seconds: float


class LoginFailed(RuntimeError):
    pass


def login(port: int, email: str, password: str, secret: str, client_ip: str) -> Login:
    """allauth's app flow: password (401 with the MFA flow pending), then the TOTP code.

    ``seconds`` is the time of the two requests that succeeded, not of waits for a fresh code.
    """
    first = request(
        port,
        "POST",
        f"{APP_API}/auth/login",
        body={"email": email, "password": password},
        client_ip=client_ip,
    )
    if first.status != 401:
        raise LoginFailed(f"password step answered {first.status}")
    pending = first.json()["meta"]["session_token"]
    for _ in range(3):
        # The server accepts the current period's code only (and each code once per user): a
        # code made near the end of its period may arrive in the next one, so wait for it.
        left = TOTP_PERIOD - time.time() % TOTP_PERIOD
        if left < TOTP_EDGE_SECONDS:
            time.sleep(left + 0.05)
        second = request(
            port,
            "POST",
            f"{APP_API}/auth/2fa/authenticate",
            token=pending,
            body={"code": totp(secret, time.time())},
            client_ip=client_ip,
        )
        if second.status == 200:
            return Login(
                token=second.json()["meta"]["session_token"],
                seconds=first.seconds + second.seconds,
                password_seconds=first.seconds,
            )
        if second.status != 400:
            break
        time.sleep(TOTP_PERIOD - time.time() % TOTP_PERIOD + 0.05)
    raise LoginFailed(f"TOTP step answered {second.status}")


@dataclass(frozen=True)
class Sample:
    """One request as the client saw it."""

    operation: str
    status: int
    seconds: float
    ok: bool
    size: int = 0  # response body bytes


@dataclass
class VirtualUser:
    """A signed-in person of the plan, with what they may act on."""

    spec: dict[str, Any]
    client_ip: str
    seed: int
    token: str = ""
    drafts: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)
    exhausted: int = 0

    def __post_init__(self) -> None:
        self.drafts = list(self.spec.get("drafts", []))
        self.reviews = list(self.spec.get("reviews", []))
        self.rng = random.Random(self.seed)  # noqa: S311 - load shape, not secrets

    @property
    def email(self) -> str:
        return str(self.spec["email"])

    def operations(self) -> list[str]:
        role = self.spec["role"]
        names = [name for name in WEIGHTS if name not in (SUBMIT, ACCEPT)]
        if role == "provider":
            names.append(SUBMIT)
        if role == "coordinator":
            names.append(ACCEPT)
        if not self.spec["reports"]:
            names.remove(PDF)
        return names

    def perform(self, port: int, operation: str) -> Sample:
        spec = self.spec
        choice = self.rng.choice
        expected = 200
        if operation == LIST:
            answer = self._get(port, "/api/v1/referrals/")
        elif operation == DETAIL:
            answer = self._get(port, f"/api/v1/referrals/{choice(spec['referrals'])}/")
        elif operation == THREAD:
            answer = self._get(port, f"/api/v1/threads/{choice(spec['threads'])}/messages/")
        elif operation == SEND:
            expected = 201
            answer = self._post(
                port, f"/api/v1/threads/{choice(spec['threads'])}/messages/", {"body": MESSAGE_BODY}
            )
        elif operation == PDF:
            answer = self._get(port, f"/api/v1/reports/{choice(spec['reports'])}/pdf/")
        elif operation in (SUBMIT, ACCEPT):
            pool = self.drafts if operation == SUBMIT else self.reviews
            if not pool:
                # Out of seeded referrals to act on: read one instead (counted, and shown).
                self.exhausted += 1
                return self.perform(port, DETAIL)
            action = "submit" if operation == SUBMIT else "accept"
            answer = self._post(port, f"/api/v1/referrals/{pool.pop()}/{action}/", {})
        elif operation == BARE_LIST:
            side = "?side=clinic" if spec["organization_kind"] == "clinic" else ""
            answer = self._get(
                port, f"/bench-baseline/organizations/{spec['organization']}/referrals/{side}"
            )
        elif operation == BARE_DETAIL:
            answer = self._get(port, f"/bench-baseline/referrals/{choice(spec['referrals'])}/")
        elif operation == BARE_THREAD:
            answer = self._get(port, f"/bench-baseline/threads/{choice(spec['threads'])}/messages/")
        elif operation == BARE_SAVE:
            expected = 201
            answer = self._post(
                port,
                f"/bench-baseline/threads/{spec['baseline_thread']}/messages/",
                {"body": MESSAGE_BODY},
            )
        else:
            raise ValueError(operation)
        ok = answer.status == expected
        return Sample(operation, answer.status, answer.seconds, ok, len(answer.body))

    def _get(self, port: int, path: str) -> Response:
        return request(port, "GET", path, token=self.token, client_ip=self.client_ip)

    def _post(self, port: int, path: str, body: Any) -> Response:
        return request(port, "POST", path, token=self.token, body=body, client_ip=self.client_ip)


@dataclass(frozen=True)
class Phase:
    """One timed run of every virtual user against one server."""

    label: str
    seconds: float
    samples: list[Sample]


def run_phase(
    port: int,
    users: Sequence[VirtualUser],
    *,
    seconds: float,
    think: tuple[float, float],
    label: str,
) -> Phase:
    """Every user loops until ``seconds`` have passed (a request started before the end is
    waited for). Users start spread over the first think time, so they do not arrive at once."""
    samples: list[Sample] = []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def loop(user: VirtualUser) -> None:
        names = user.operations()
        weights = [WEIGHTS[name] for name in names]
        mine: list[Sample] = []
        time.sleep(user.rng.uniform(0, think[1]))
        while time.perf_counter() < deadline:
            operation = user.rng.choices(names, weights)[0]
            mine.append(user.perform(port, operation))
            pause = user.rng.uniform(*think)
            time.sleep(max(0.0, min(pause, deadline - time.perf_counter())))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=loop, args=(user,), daemon=True) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + TIMEOUT_SECONDS + 30)
    return Phase(label, time.perf_counter() - started, samples)


@dataclass(frozen=True)
class LoginRun:
    count: int
    failures: int
    seconds: float
    latencies: list[float]
    password_latencies: list[float]


def login_all(
    port: int,
    people: Sequence[tuple[str, str, str]],
    password: str,
    *,
    concurrency: int,
    on_token: Callable[[str, str], None] | None = None,
) -> LoginRun:
    """Sign ``people`` ((e-mail, TOTP secret, client IP)) in, ``concurrency`` at a time."""
    queue = list(people)
    lock = threading.Lock()
    latencies: list[float] = []
    password_latencies: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                email, secret, client_ip = queue.pop()
            try:
                done = login(port, email, password, secret, client_ip)
            except (LoginFailed, KeyError, ValueError) as error:
                with lock:
                    failures.append(f"{email}: {error}")
                continue
            with lock:
                latencies.append(done.seconds)
                password_latencies.append(done.password_seconds)
            if on_token is not None:
                on_token(email, done.token)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        print(f"  {len(failures)} logins failed, e.g. {failures[0]}")
    return LoginRun(
        count=len(latencies),
        failures=len(failures),
        seconds=time.perf_counter() - started,
        latencies=latencies,
        password_latencies=password_latencies,
    )


_ID = "[0-9a-f-]{36}"
# (method, path pattern, operation): how an access-log line of the server maps to the mix.
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"/api/v1/referrals/"), LIST),
    ("GET", re.compile(rf"/api/v1/referrals/{_ID}/"), DETAIL),
    ("GET", re.compile(rf"/api/v1/threads/{_ID}/messages/"), THREAD),
    ("POST", re.compile(rf"/api/v1/threads/{_ID}/messages/"), SEND),
    ("POST", re.compile(rf"/api/v1/referrals/{_ID}/submit/"), SUBMIT),
    ("POST", re.compile(rf"/api/v1/referrals/{_ID}/accept/"), ACCEPT),
    ("GET", re.compile(rf"/api/v1/reports/{_ID}/pdf/"), PDF),
    ("GET", re.compile(rf"/bench-baseline/organizations/{_ID}/referrals/"), BARE_LIST),
    ("GET", re.compile(rf"/bench-baseline/referrals/{_ID}/"), BARE_DETAIL),
    ("GET", re.compile(rf"/bench-baseline/threads/{_ID}/messages/"), BARE_THREAD),
    ("POST", re.compile(rf"/bench-baseline/threads/{_ID}/messages/"), BARE_SAVE),
)
CREATED = frozenset({SEND, BARE_SAVE})


@dataclass(frozen=True)
class ServerSample:
    """One request as the worker saw it (bench.wsgi's request log)."""

    operation: str
    status: int
    seconds: float
    ok: bool
    cpu_seconds: float
    queries: int
    query_seconds: float


def classify(method: str, path: str) -> str | None:
    for route_method, pattern, operation in ROUTES:
        if method == route_method and pattern.fullmatch(path):
            return operation
    return None


def server_samples(lines: Iterable[str], since: float, until: float) -> list[ServerSample]:
    """The requests that ended between ``since`` and ``until`` (epoch seconds), from the lines
    ``bench.wsgi`` writes: end time, method, path, status, wall µs, CPU µs, queries, query µs."""
    found: list[ServerSample] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 8:
            continue
        try:
            ended = float(parts[0])
            status, wall, cpu, queries, query_time = (int(part) for part in parts[3:])
        except ValueError:
            continue
        operation = classify(parts[1], parts[2])
        if operation is None or not since <= ended <= until:
            continue
        expected = 201 if operation in CREATED else 200
        found.append(
            ServerSample(
                operation=operation,
                status=status,
                seconds=wall / 1e6,
                ok=status == expected,
                cpu_seconds=cpu / 1e6,
                queries=queries,
                query_seconds=query_time / 1e6,
            )
        )
    return found


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0-1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]
