"""The outbox against a real loopback SMTP server (aiosmtpd): idempotent enqueue, delivery with
the outbox key as Message-ID, a refused connection that keeps mail pending with backoff until the
server is up, in-app and SMS channels, and a claim that only one worker can win."""

from __future__ import annotations

import datetime as dt
import email
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from app.messaging.channels import SmtpSettings
from app.messaging.outbox import NOTIFICATION, OUTBOX, Channels, backoff, claim, deliver_due, enqueue

NOW = dt.datetime(2026, 11, 2, 10, 0)


class Recorder:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"

    def ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]).strip("<>").removesuffix("@crm.outbox") for m in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield recorder, port
    controller.stop()


def message(source: str, i: int, channel: str = "email", **extra: Any) -> dict[str, Any]:
    return {"key": f"{source}.{i}.X.0.a", "source": source, "entity": "test", "record_id": i, "occurrence": "X", "channel": channel,
            "recipient_address": f"r{i}@example.cn", "subject": f"主题 {i}", "body": f"正文 {i}", "next_attempt_at": NOW, **extra}


def rows(app: Any, source: str) -> list[Any]:
    with app.app_context():
        return list(app.extensions["crm"].db.session.execute(sa.select(OUTBOX).where(OUTBOX.c.source == source).order_by(OUTBOX.c.id)))


def put(app: Any, messages: list[dict[str, Any]]) -> int:
    with app.app_context():
        session = app.extensions["crm"].db.session
        n = enqueue(session, messages)
        session.commit()
        return n


def deliver(app: Any, port: int | None, now: dt.datetime = NOW) -> Any:
    channels = Channels(SmtpSettings("127.0.0.1", port, "crm@example.cn", timeout=5) if port else None)
    with app.app_context():
        return deliver_due(app.extensions["crm"].db.session, 10_000, now, channels)


def test_enqueue_is_idempotent(app: Any) -> None:
    source = f"t{uuid.uuid4().hex[:8]}"
    assert put(app, [message(source, i) for i in range(5)]) == 5
    assert put(app, [message(source, i) for i in range(7)]) == 2
    assert len(rows(app, source)) == 7


def test_email_delivered_once_with_key_as_message_id(app: Any, smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    source = f"t{uuid.uuid4().hex[:8]}"
    put(app, [message(source, i) for i in range(20)])
    deliver(app, port)
    deliver(app, port)
    mine = sorted(k for k in recorder.ids() if k.startswith(source))
    assert mine == sorted(r.key for r in rows(app, source))
    assert all(r.status == "sent" and r.sent_on == NOW and r.attempts == 1 for r in rows(app, source))
    got = next(m for m in recorder.messages if str(m["Message-ID"]).startswith(f"<{source}.3."))
    assert str(email.header.make_header(email.header.decode_header(got["Subject"]))) == "主题 3"
    assert got.get_payload(decode=True).decode().strip() == "正文 3"


def test_refused_connection_keeps_mail_pending_with_backoff(app: Any) -> None:
    source = f"t{uuid.uuid4().hex[:8]}"
    put(app, [message(source, i) for i in range(3)])
    port = free_port()  # nothing listens there: connection refused
    result = deliver(app, port)
    assert result.retry >= 3
    first = rows(app, source)
    assert all(r.status == "pending" and r.attempts == 1 and r.next_attempt_at == NOW + backoff(1) for r in first)
    assert all("Refused" in (r.last_error or "") or "refused" in (r.last_error or "") for r in first)
    deliver(app, port, NOW + dt.timedelta(seconds=30))  # not due again yet: untouched
    assert all(r.attempts == 1 for r in rows(app, source))
    deliver(app, port, NOW + backoff(1))
    assert all(r.attempts == 2 and r.next_attempt_at == NOW + backoff(1) + backoff(2) for r in rows(app, source))

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        deliver(app, port, NOW + dt.timedelta(hours=1))
    finally:
        controller.stop()
    assert sorted(k for k in recorder.ids() if k.startswith(source)) == sorted(r.key for r in rows(app, source))
    assert all(r.status == "sent" and r.attempts == 3 for r in rows(app, source))


def test_no_smtp_host_keeps_mail_in_the_outbox(app: Any) -> None:
    source = f"t{uuid.uuid4().hex[:8]}"
    put(app, [message(source, 1)])
    deliver(app, None)
    assert [r.status for r in rows(app, source)] == ["pending"]


def test_inapp_and_sms(app: Any) -> None:
    from app.access.accounts import add_user

    uid = add_user(app, f"ob_{uuid.uuid4().hex[:6]}", [app.extensions["crm"].spec.roles[1].name], "pw-Outbox-123")
    source = f"t{uuid.uuid4().hex[:8]}"
    put(app, [message(source, 1, "inapp", recipient_user_id=uid, link="http://x/1"), message(source, 2, "sms", recipient_address="13800000000")])
    deliver(app, None)
    deliver(app, None)
    inapp, sms = rows(app, source)
    assert inapp.status == "sent" and sms.status == "recorded" and "not sent" in sms.last_error
    with app.app_context():
        notes = app.extensions["crm"].db.session.execute(sa.select(NOTIFICATION).where(NOTIFICATION.c.outbox_key == inapp.key)).all()
    assert [(n.user_id, n.title, n.link, n.read_at) for n in notes] == [(uid, "主题 1", "http://x/1", None)]


def test_a_row_is_claimed_by_one_worker_only(app: Any) -> None:
    source = f"t{uuid.uuid4().hex[:8]}"
    put(app, [message(source, 1, "sms")])
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    from sqlalchemy.orm import Session

    with Session(engine) as a, Session(engine) as b:
        won_a = [r.key for r in claim(a, NOW, 10_000, ("sms",)) if r.source == source]
        won_b = [r.key for r in claim(b, NOW, 10_000, ("sms",)) if r.source == source]
    assert len(won_a) + len(won_b) == 1
    assert [r.status for r in rows(app, source)] == ["sending"]
    with app.app_context():  # a worker that died holding it: released after the lease, then sent
        d = deliver_due(app.extensions["crm"].db.session, 10_000, NOW + dt.timedelta(minutes=10), Channels())
    assert d.released >= 1
    assert [r.status for r in rows(app, source)] == ["recorded"]


def test_one_message_that_cannot_be_sent_does_not_hold_up_the_others(app: Any, smtp_server: tuple[Recorder, int]) -> None:
    """A line break in a subject (an Excel cell with Alt+Enter) cannot be a mail header; an address
    in Chinese cannot go to a server without SMTPUTF8. Each fails alone, for good; the rest go."""
    recorder, port = smtp_server
    source = f"t{uuid.uuid4().hex[:8]}"
    put(app, [message(source, 1, subject="中秋节问候\n(附月饼礼盒)"), message(source, 2, recipient_address="客户@例子.cn"),
              message(source, 3)])
    deliver(app, port)
    by_id = {r.record_id: r for r in rows(app, source)}
    assert (by_id[1].status, by_id[2].status, by_id[3].status) == ("failed", "failed", "sent")
    assert by_id[1].attempts == by_id[2].attempts == 1 and by_id[1].last_error and by_id[2].last_error
    assert [k for k in recorder.ids() if k.startswith(source)] == [by_id[3].key]


def test_a_message_another_worker_took_after_the_lease_is_not_sent_again(app: Any, smtp_server: tuple[Recorder, int],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run slower than the lease (a slow mail server) loses the rest of its batch to another
    worker, which sends them; the slow run then skips them instead of sending them twice."""
    from sqlalchemy.orm import Session

    from app.messaging import outbox

    recorder, port = smtp_server
    source = f"t{uuid.uuid4().hex[:8]}"
    put(app, [message(source, i) for i in range(3)])
    renew, took_over = outbox._renew, []

    def another_worker_meanwhile(session: Any, row_id: int, claimed: dt.datetime, stamp: dt.datetime) -> bool:
        if not took_over:  # before the slow run's first send, the lease has run out and another worker sends all
            took_over.append(True)
            with app.app_context(), Session(app.extensions["crm"].db.engine) as other:
                channels = Channels(SmtpSettings("127.0.0.1", port, "crm@example.cn", timeout=5))
                assert deliver_due(other, 10_000, NOW + dt.timedelta(minutes=10), channels).sent >= 3
        return renew(session, row_id, claimed, stamp)

    monkeypatch.setattr(outbox, "_renew", another_worker_meanwhile)
    deliver(app, port)
    sent = [k for k in recorder.ids() if k.startswith(source)]
    assert sorted(sent) == sorted(r.key for r in rows(app, source)), "each message once"
    assert all(r.status == "sent" for r in rows(app, source))


def _self_signed(folder: Any) -> tuple[str, str]:
    """(certificate, key) files of a certificate for 127.0.0.1, made now."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_mail_goes_over_starttls_to_a_trusted_server_only(app: Any, tmp_path: Any) -> None:
    """CRM_SMTP_STARTTLS (ASVS 9.2.1): with it, mail reaches a server requiring STARTTLS whose
    certificate the CA file vouches for; a server it does not vouch for gets nothing (the mail
    waits with the error), and without it such a server refuses the plain session."""
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    recorder, port = Recorder(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    try:
        def send(settings: SmtpSettings, source: str) -> list[Any]:
            put(app, [message(source, 1)])
            with app.app_context():
                deliver_due(app.extensions["crm"].db.session, 10_000, NOW, Channels(settings))
            return rows(app, source)

        plain = send(SmtpSettings("127.0.0.1", port, "crm@example.cn", timeout=5), f"p{uuid.uuid4().hex[:8]}")
        assert plain[0].status != "sent" and "STARTTLS" in (plain[0].last_error or "")
        untrusted = send(SmtpSettings("127.0.0.1", port, "crm@example.cn", timeout=5, starttls=True), f"u{uuid.uuid4().hex[:8]}")
        assert untrusted[0].status == "pending" and "CERTIFICATE_VERIFY_FAILED" in (untrusted[0].last_error or "")
        assert recorder.ids() == []
        source = f"s{uuid.uuid4().hex[:8]}"
        sent = send(SmtpSettings("127.0.0.1", port, "crm@example.cn", timeout=5, starttls=True, cafile=cert), source)
        assert sent[0].status == "sent" and recorder.ids() == [sent[0].key]
    finally:
        controller.stop()
    assert SmtpSettings.from_config({"CRM_SMTP_HOST": "mail", "CRM_SMTP_STARTTLS": True, "CRM_SMTP_CAFILE": cert}) == SmtpSettings(
        "mail", 25, "crm@localhost", starttls=True, cafile=cert)
