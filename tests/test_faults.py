"""Faults of the services the portal runs on, with the real services: nothing is lost, no request
leaks an error, and everything recovers without restarting the web tier.

The shared PostgreSQL and Redis servers are never stopped (other test runs use them):

- the broker outage uses a private ``redis-server`` on a free loopback port, started and killed
  by the test, as the broker of both this process and a live Celery worker;
- the database restart goes through a TCP proxy (a thread of the test, loopback only) between a
  WSGI server thread and PostgreSQL: taking the proxy down cuts every connection and refuses new
  ones, as a restarting server does.

A worker killed in the middle of a report is covered by
``tests/reports/test_live_worker.py::test_a_worker_killed_mid_report_leaves_exactly_one_ready_report``.

They need PostgreSQL and Redis (``DATABASE_URL``, ``CELERY_BROKER_URL``) and skip with a reason
otherwise; CI runs them with ``REQUIRE_SERVICES=1``, which turns a skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import redis
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from messaging import services as messaging_services
from messaging.models import Message
from portal.celery import app as celery_app
from portal.notifications.models import EmailDelivery
from portal.notifications.services import email_deliveries_redrive
from portal.wsgi import application
from referrals.models import ReferralStatus
from tests.conftest import StartLiveWorker, wait_for
from tests.personas import Cast
from tests.portal.accounts.helpers import app_sign_in
from tests.referrals.factories import referral_in_state
from tests.referrals.helpers import api_client

LOOPBACK = "127.0.0.1"
SERVICES = bool(os.environ.get("DATABASE_URL") and os.environ.get("CELERY_BROKER_URL"))
pytestmark = pytest.mark.skipif(
    not SERVICES, reason="needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)"
)
#: Words that would show an error page leaking internals.
LEAKS = ("Traceback", "psycopg", "OperationalError", "5432", "SELECT", 'File "')


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # Argon2 is what production uses; the cast's passwords only need to exist here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


# --- a private Redis -----------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    directory: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def ping(self) -> bool:
        client = redis.Redis(host=LOOPBACK, port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
            "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        assert wait_for(self.ping, timeout=20), (self.directory / "redis.log").read_text()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        assert not self.ping()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server program for a private broker")
    server = PrivateRedis(directory=tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def _reset_producers() -> None:
    """Forget the pooled broker connections, so the next publish connects to the current URL."""
    pool = getattr(celery_app, "_pool", None)
    if pool is not None:
        pool.force_close_all()
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]


@contextmanager
def publishing_to(url: str) -> Iterator[None]:
    """This process publishes to ``url``. Celery prefers the CELERY_BROKER_URL environment
    variable to ``broker_url``, but asks ``broker_write_url`` first when publishing."""
    previous = celery_app.conf.get("broker_write_url")
    _reset_producers()
    celery_app.conf["broker_write_url"] = url
    try:
        yield
    finally:
        _reset_producers()
        celery_app.conf["broker_write_url"] = previous


@pytest.mark.live_worker
def test_work_done_while_the_broker_is_down_is_notified_once_it_is_back(
    cast: Cast,
    private_redis: PrivateRedis,
    start_live_worker: StartLiveWorker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    draft = referral_in_state(cast, ReferralStatus.DRAFT)
    thread = messaging_services.referral_thread_ensure(
        referral=referral_in_state(cast, ReferralStatus.SUBMITTED)
    )
    worker = start_live_worker(
        # Django's file backend; "filemail:///" + an absolute path.
        env={"CELERY_BROKER_URL": private_redis.url, "EMAIL_URL": f"filemail:///{mail_dir}"}
    )
    provider = api_client(cast, "provider")

    with publishing_to(private_redis.url):
        private_redis.kill()
        started = time.monotonic()
        submitted = provider.post(f"/api/v1/referrals/{draft.public_id}/submit/", {}, format="json")
        sent = provider.post(
            f"/api/v1/threads/{thread.public_id}/messages/",
            {"body": "The evaluation is attached."},
            format="json",
        )
        elapsed = time.monotonic() - started

        # Both writes succeed. The submission's e-mails wait in the outbox; the message waits
        # marked for its participants' notifications (their task could not be published).
        assert (submitted.status_code, sent.status_code) == (200, 201), (submitted, sent)
        assert submitted.json()["status"] == "submitted"
        assert elapsed < 10, f"the requests waited {elapsed:.1f} s on the dead broker"
        waiting = list(EmailDelivery.objects.order_by("pk"))
        assert {delivery.status for delivery in waiting} == {"pending"}
        assert "coordinator@cast.example" in {delivery.recipient.email for delivery in waiting}
        message = Message.objects.get(public_id=sent.json()["id"])
        assert message.notify_pending is True
        assert list(mail_dir.iterdir()) == []
        # The web process did try the (dead) broker for both, and carried on.
        assert "notifications.enqueue_failed" in caplog.text
        assert "queue.enqueue_failed" in caplog.text

        private_redis.start()  # back on the same port
        # The outage lasted a while: the rows are older than the re-drives' waiting minute.
        EmailDelivery.objects.update(created_at=timezone.now() - timedelta(minutes=2))
        Message.objects.filter(pk=message.pk).update(
            created_at=timezone.now() - timedelta(minutes=2)
        )
        # The periodic jobs: the message's notifications (their e-mails are published as they
        # commit), then the submission's e-mails. Each a second time: nothing more is done.
        assert messaging_services.messages_notify_pending() == [message.pk]
        assert messaging_services.messages_notify_pending() == []
        first = email_deliveries_redrive()
        second = email_deliveries_redrive()  # leased: a second run enqueues nothing again

        assert sorted(first) == [delivery.pk for delivery in waiting]
        assert second == []
        everyone = list(EmailDelivery.objects.order_by("pk"))
        recipients = sorted(delivery.recipient.email for delivery in everyone)
        # The coordinator hears of the submission; the clinic and the practice of the message.
        assert "colleague@cast.example" in recipients
        assert recipients.count("coordinator@cast.example") == 2
        assert wait_for(
            lambda: set(EmailDelivery.objects.values_list("status", flat=True)) == {"sent"},
            timeout=120,
        ), worker.log()

    time.sleep(2)  # anything sent twice would show up by now
    delivered = list(EmailDelivery.objects.order_by("pk"))
    assert [delivery.attempts for delivery in delivered] == [1] * len(everyone)
    # Django's file backend appends to one file per connection and second, so a file may hold
    # several e-mails: every "To:" line counts.
    mails = "".join(path.read_text() for path in sorted(mail_dir.iterdir()))
    assert sorted(line[4:] for line in mails.splitlines() if line.startswith("To: ")) == recipients


# --- the database restarted under load -----------------------------------------------------------


class TcpProxy:
    """Forwards a loopback port to PostgreSQL; ``down()`` cuts every connection and refuses new
    ones until ``up()``, which is what clients see while the database restarts."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.accepting = threading.Event()
        self.accepting.set()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.accepting.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target, timeout=5)
            with self.lock:
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                self._close(end)

    @staticmethod
    def _close(end: socket.socket) -> None:
        with suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()

    def down(self) -> None:
        self.accepting.clear()
        with self.lock:
            ends, self.open = self.open, []
        for end in ends:
            self._close(end)

    def up(self) -> None:
        self.accepting.set()

    def close(self) -> None:
        self.stopped.set()
        self.down()
        self.listener.close()
        self.thread.join(timeout=5)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str


def _get(port: int, path: str, token: str) -> Answer:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{path}", headers={"X-Session-Token": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - loopback
            return Answer(
                response.status, response.headers["Content-Type"], response.read().decode()
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers["Content-Type"], error.read().decode())


@dataclass
class WebTier:
    """The portal's WSGI application served by a thread, its database behind the proxy."""

    proxy: TcpProxy
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture
def web_tier(transactional_db: None) -> Iterator[WebTier]:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL) for the database restart")
    database = connection.settings_dict
    original = (database["HOST"], database["PORT"])
    proxy = TcpProxy(str(database["HOST"] or LOOPBACK), int(database["PORT"] or 5432))
    server = make_server(LOOPBACK, 0, application, handler_class=QuietHandler)

    def serve() -> None:
        try:
            server.serve_forever(poll_interval=0.1)
        finally:
            # The thread's own (persistent) connection; the test database is dropped later.
            connections.close_all()

    # New connections, in every thread, go through the proxy; this thread's stays direct.
    database["HOST"], database["PORT"] = LOOPBACK, proxy.port
    thread = threading.Thread(target=serve, name="wsgi", daemon=True)
    thread.start()
    try:
        yield WebTier(proxy=proxy, server=server, thread=thread)
    finally:
        server.shutdown()
        thread.join(timeout=20)
        server.server_close()
        database["HOST"], database["PORT"] = original
        proxy.close()


def test_a_database_restart_under_load_fails_cleanly_and_recovers_without_a_restart(
    cast: Cast, web_tier: WebTier
) -> None:
    provider = cast["provider"]
    assert provider.user is not None
    token = app_sign_in(Client(), provider.user.email, provider.password, provider.totp_secret)
    path = "/api/v1/referrals/?page_size=5"
    referral_in_state(cast, ReferralStatus.SUBMITTED)

    before = [_get(web_tier.port, path, token) for _ in range(5)]
    assert [answer.status for answer in before] == [200] * 5

    answers: list[Answer] = []
    done = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline and len(answers) < 500:
            answers.append(_get(web_tier.port, path, token))

    loader = threading.Thread(target=load, name="load", daemon=True)
    loader.start()
    time.sleep(0.5)
    web_tier.proxy.down()  # the database goes away mid-load...
    time.sleep(1.5)
    during = len(answers)
    web_tier.proxy.up()  # ...and is back
    time.sleep(0.5)
    done.set()
    loader.join(timeout=30)

    after = [_get(web_tier.port, path, token) for _ in range(5)]

    failed = [answer for answer in answers if answer.status != 200]
    assert failed, "no request met the outage"
    assert during < len(answers), "no request ran after the database came back"
    for answer in failed:
        assert answer.status in {500, 503}, answer
        for leak in LEAKS:
            assert leak not in answer.body, (leak, answer.body[:500])
    # The same server process and thread, never restarted, answer again.
    assert web_tier.thread.is_alive()
    assert [answer.status for answer in after] == [200] * 5
    assert answers[-1].status == 200
