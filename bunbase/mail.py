"""Outgoing mail for platform messages (verification, password reset, invitations).

`send(ctx, ...)` queues a job through the outbox, so a message goes out only if the action
commits. The job delivers over SMTP to `SMTP_URL` (`smtp://host:port`); with no SMTP_URL
set, messages are written as .eml files to `instance/mail/` for local development.

Secrets never enter the job's payload, which tenant administrators can read: the text names
them as `${name}` and `secrets={"name": value}` seals each value (`bunbase.sealed`); the
payload keeps the references and the job puts the values in when it builds the message.
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from string import Template
from typing import Any
from urllib.parse import urlparse

import structlog
from flask import current_app

from bunbase import sealed
from bunbase.clock import clock
from bunbase.context import Context
from bunbase.jobs import PermanentError, enqueue, job

log = structlog.get_logger("bunbase.mail")


def send(
    ctx: Context,
    *,
    to: str,
    subject: str,
    text: str,
    kind: str = "notice",
    secrets: Mapping[str, str] | None = None,
    secret_ttl: timedelta = timedelta(days=1),
) -> str:
    """Queue a message. `text` may name each of `secrets` as `${name}`; their values are
    sealed for `secret_ttl` (the life of the link they carry) and never stored in clear."""
    payload: dict[str, Any] = {"to": to, "subject": subject, "text": text, "kind": kind}
    if secrets:
        payload["secrets"] = {
            name: sealed.seal(ctx, value, ttl=secret_ttl, purpose=f"mail:{kind}")
            for name, value in secrets.items()
        }
    return enqueue(ctx, "bunbase.mail.send", payload)


def _text(payload: dict[str, Any], ctx: Context) -> str:
    refs: dict[str, str] = payload.get("secrets") or {}
    try:
        values = {name: sealed.unseal(ctx.db, ref) for name, ref in refs.items()}
    except sealed.SealedValueGone as exc:
        raise PermanentError(exc.message) from None
    return Template(payload["text"]).safe_substitute(values)


def _message(payload: dict[str, Any], text: str) -> EmailMessage:
    settings = current_app.extensions["bunbase"].settings
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = payload["to"]
    msg["Subject"] = payload["subject"]
    msg["Message-ID"] = make_msgid(domain="bunbase.local")
    msg["X-Bunbase-Kind"] = payload.get("kind", "notice")
    msg.set_content(text)
    return msg


@job("bunbase.mail.send", queue="high")
def deliver(payload: dict[str, Any], ctx: Context) -> dict[str, str]:
    settings = current_app.extensions["bunbase"].settings
    msg = _message(payload, _text(payload, ctx))
    if settings.smtp_url:
        url = urlparse(settings.smtp_url)
        with smtplib.SMTP(url.hostname or "127.0.0.1", url.port or 25, timeout=10) as smtp:
            if url.scheme == "smtp+starttls":
                smtp.starttls()
            if url.username:
                smtp.login(url.username, url.password or "")
            smtp.send_message(msg)
        log.info("mail sent", to=payload["to"], kind=payload.get("kind"), trace_id=ctx.trace_id)
        return {"delivered": "smtp", "messageId": msg["Message-ID"]}
    folder = settings.instance_dir / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{clock.now():%Y%m%dT%H%M%S}-{ctx.run_id}.eml"
    path.write_bytes(bytes(msg))
    log.info("mail written", path=str(path), to=payload["to"])
    # the file's name stays in the server's log: results are shown to tenant admins
    return {"delivered": "file", "messageId": msg["Message-ID"]}
