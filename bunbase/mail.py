"""Outgoing mail for platform messages (verification, password reset, invitations).

`send(ctx, ...)` queues a job through the outbox, so a message goes out only if the action
commits. The job delivers over SMTP to `SMTP_URL` (`smtp://host:port`); with no SMTP_URL
set, messages are written as .eml files to `instance/mail/` for local development.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlparse

import structlog
from flask import current_app

from bunbase.clock import clock
from bunbase.context import Context
from bunbase.jobs import enqueue, job

log = structlog.get_logger("bunbase.mail")


def send(ctx: Context, *, to: str, subject: str, text: str, kind: str = "notice") -> str:
    return enqueue(ctx, "bunbase.mail.send", {"to": to, "subject": subject, "text": text, "kind": kind})


def _message(payload: dict[str, Any]) -> EmailMessage:
    settings = current_app.extensions["bunbase"].settings
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = payload["to"]
    msg["Subject"] = payload["subject"]
    msg["X-Bunbase-Kind"] = payload.get("kind", "notice")
    msg.set_content(payload["text"])
    return msg


@job("bunbase.mail.send", queue="high")
def deliver(payload: dict[str, Any], ctx: Context) -> dict[str, str]:
    settings = current_app.extensions["bunbase"].settings
    msg = _message(payload)
    if settings.smtp_url:
        url = urlparse(settings.smtp_url)
        with smtplib.SMTP(url.hostname or "127.0.0.1", url.port or 25, timeout=10) as smtp:
            if url.scheme == "smtp+starttls":
                smtp.starttls()
            if url.username:
                smtp.login(url.username, url.password or "")
            smtp.send_message(msg)
        log.info("mail sent", to=payload["to"], kind=payload.get("kind"), trace_id=ctx.trace_id)
        return {"delivered": "smtp"}
    folder = settings.instance_dir / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{clock.now():%Y%m%dT%H%M%S}-{ctx.run_id}.eml"
    path.write_bytes(bytes(msg))
    log.info("mail written", path=str(path), to=payload["to"])
    return {"delivered": str(path)}
