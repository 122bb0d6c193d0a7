"""Settings read once from the environment (and `.env` if present)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob the platform reads. Defaults give the embedded single-machine setup."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    instance_dir: Path = Field(default=ROOT / "instance", alias="BUNBASE_INSTANCE_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    secret_key: str | None = Field(default=None, alias="SECRET_KEY")
    modules_dir: Path = Field(default=ROOT / "modules", alias="BUNBASE_MODULES_DIR")
    extra_modules: str = Field(default="", alias="BUNBASE_EXTRA_MODULES")
    base_domain: str = Field(default="localhost", alias="BUNBASE_BASE_DOMAIN")
    session_ttl_hours: int = Field(default=24 * 7, alias="BUNBASE_SESSION_TTL_HOURS")
    buffer_interval: float = Field(default=2.0, alias="BUNBASE_BUFFER_INTERVAL")
    buffer_max_items: int = Field(default=500, alias="BUNBASE_BUFFER_MAX_ITEMS")
    idempotency_ttl_hours: int = Field(default=24, alias="BUNBASE_IDEMPOTENCY_TTL_HOURS")
    #: seconds a request may run; gunicorn's --timeout in `make run`. An idempotency key
    #: whose request has not finished by then is taken to be abandoned (its process died)
    request_timeout: int = Field(default=30, ge=1, alias="BUNBASE_REQUEST_TIMEOUT")
    log_level: str = Field(default="INFO", alias="BUNBASE_LOG_LEVEL")
    smtp_url: str | None = Field(default=None, alias="SMTP_URL")
    mail_from: str = Field(default="Bunbase <no-reply@bunbase.local>", alias="MAIL_FROM")
    public_url: str = Field(default="http://127.0.0.1:5000", alias="BUNBASE_PUBLIC_URL")
    #: Secure cookies and HSTS; by default on when the public URL is https
    secure_cookies: bool | None = Field(default=None, alias="BUNBASE_SECURE_COOKIES")
    #: largest request body read, in bytes (an action may declare a larger `max_body`)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, alias="BUNBASE_MAX_BODY_BYTES")

    @property
    def https(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.public_url.lower().startswith("https://")

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_dir / 'bunbase.db'}"

    def resolved_secret_key(self) -> str:
        """Use SECRET_KEY, else a random key kept in the instance folder across restarts."""
        if self.secret_key:
            return self.secret_key
        path = self.instance_dir / "secret_key"
        if not path.exists():
            self.instance_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()
