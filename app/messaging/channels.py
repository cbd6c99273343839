"""How an outbox message leaves the system: e-mail over SMTP, an in-app notification row, or SMS
(an interface whose default implementation only records the message: "recorded, not sent").

Messages are rendered from the templates sheet with Jinja's *sandboxed* environment: a workbook
editor writes the templates, so they see a read-only view of the record (its sheet fields, links
followed to the linked record's fields, users as their names) — never an ORM object.

E-mail is sent with the "commit before the final dot" protocol: the message is transmitted up to
the end of DATA, then ``on_commit`` marks the row sent in the database, and only then the
terminating ``.`` is written. A crash before the commit leaves an unfinished SMTP transaction that
the server discards (so resending is safe); a crash after it means the dot is already on its way.
The only window left is a single ``send()`` call after the commit.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from functools import lru_cache
from typing import Any, Protocol

from app.spec.model import Entity, Spec, Template, template_environment

_ENV = template_environment()


class RecordView:
    """What a template sees of a record: sheet fields only; links become RecordViews."""

    def __init__(self, spec: Spec, entity: Entity, obj: Any, depth: int = 0):
        self._spec, self._entity, self._obj, self._depth = spec, entity, obj, depth

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ("id", "created_on", "changed_on"):
            return getattr(self._obj, name, None)
        f = self._entity.field(name)
        if f is None:
            raise AttributeError(name)
        value = getattr(self._obj, name, None)
        if value is None:
            return None
        if f.type == "user":
            return user_name(value)
        if f.type == "link":
            target = self._spec.entity(f.link)
            return RecordView(self._spec, target, value, self._depth + 1) if target is not None and self._depth < 3 else str(value)
        if f.type == "choice":
            return choice_label(self._spec, f.choices, value)
        return value

    def __str__(self) -> str:
        return str(self._obj)


class ChoiceText(str):
    """A choice as a template shows it: its label; ``.value`` is the stored value."""

    value: str = ""

    @property
    def label(self) -> str:
        return str(self)


def choice_label(spec: Spec, list_name: str, value: Any) -> Any:
    label = next((c.label for c in spec.choices.get(list_name, ()) if c.value == value), None) or str(value)
    text = ChoiceText(label)
    text.value = str(value)
    return text


def user_name(user: Any) -> str:
    if user is None:
        return ""
    name = f"{getattr(user, 'last_name', '') or ''}{getattr(user, 'first_name', '') or ''}".replace("-", "")
    return name or str(getattr(user, "username", ""))


def render(template: Template | None, context: Mapping[str, Any], default_subject: str = "", default_body: str = "") -> tuple[str, str]:
    """(subject, body) of ``template`` in the sandbox; a broken template renders as its source
    plus the error, so a message is never lost to a typo in a sheet."""
    subject = template.subject if template is not None else default_subject
    body = template.body if template is not None else default_body
    return _render_one(subject, context), _render_one(body, context)


@lru_cache(maxsize=512)
def _compiled(text: str) -> Any:
    return _ENV.from_string(text)


def _render_one(text: str, context: Mapping[str, Any]) -> str:
    try:
        return _compiled(text or "").render(**context)
    except Exception as exc:  # noqa: BLE001 - any template error is reported in the message itself
        return f"{text}\n[template error: {type(exc).__name__}: {exc}]"


# -- e-mail --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmtpSettings:
    """Where mail goes. ``starttls``: the connection is encrypted before anything is sent, the
    server's certificate checked against the system's authorities (or ``cafile``'s, an office CA);
    a server that cannot do it gets nothing (ASVS 9.2.1)."""

    host: str
    port: int = 25
    sender: str = "crm@localhost"
    timeout: float = 10.0
    starttls: bool = False
    cafile: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings | None:
        host = str(config.get("CRM_SMTP_HOST") or "")
        if not host:
            return None  # DESIGN §5: no SMTP host → mail stays in the outbox
        return cls(host, int(config.get("CRM_SMTP_PORT") or 25), str(config.get("CRM_MAIL_FROM") or "crm@localhost"),
                   starttls=bool(config.get("CRM_SMTP_STARTTLS")), cafile=str(config.get("CRM_SMTP_CAFILE") or ""))


def build_email(settings: SmtpSettings, key: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = f"<{key}@crm.outbox>"
    msg.set_content(body)
    return msg


class SmtpSender:
    """One SMTP connection reused for a batch; ``send`` commits through ``on_commit`` before the
    final dot (see the module docstring)."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.settings.host, self.settings.port, timeout=self.settings.timeout)
            if smtp.sock is not None:  # the final dot is a small write after the body: no Nagle/delayed-ACK stall
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.ehlo_or_helo_if_needed()
            if self.settings.starttls:  # refused (an exception) when the server cannot, or its certificate is not trusted
                smtp.starttls(context=ssl.create_default_context(cafile=self.settings.cafile or None))
                smtp.ehlo()
            self._smtp = smtp
        return self._smtp

    def send(self, msg: EmailMessage, on_commit: Callable[[], None]) -> None:
        try:
            self._transmit(msg, on_commit)
        except BaseException:
            self.close(quit_=False)
            raise

    def _transmit(self, msg: EmailMessage, on_commit: Callable[[], None]) -> None:
        smtp = self._connection()
        sender, to = self.settings.sender, str(msg["To"])
        code, reply = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = smtp.rcpt(to)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        data = smtplib._quote_periods(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))  # type: ignore[attr-defined]
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        smtp.send(data)
        on_commit()
        smtp.send(b".\r\n")
        code, reply = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)

    def close(self, quit_: bool = True) -> None:
        if self._smtp is None:
            return
        try:
            if quit_:
                self._smtp.quit()
            else:
                self._smtp.close()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None


# -- SMS -----------------------------------------------------------------------------------------

class SmsSender(Protocol):
    """Send one text message; return the status to store (``sent``, or ``recorded``)."""

    def send(self, to: str, text: str) -> str: ...


class RecordingSms:
    """The default SMS channel: no gateway is configured, the message is kept in the outbox with
    status ``recorded`` — recorded, not sent. Plug a real gateway with the same ``send``."""

    label = "recorded, not sent (记录但未发送)"

    def send(self, to: str, text: str) -> str:
        return "recorded"


def now_local() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)
