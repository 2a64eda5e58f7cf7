"""One typed Settings object, read from ``EVENTPIPE_*`` environment variables and an optional TOML file.

Validation happens once, at start: a bad value raises :class:`ConfigError` naming the environment
variable (or TOML key) and the expected form, so an operator can fix it without reading code.
Precedence: environment > TOML file (``EVENTPIPE_CONFIG`` or ``./eventpipe.toml``) > defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from eventpipe.errors import EventpipeError

ENV_PREFIX = "EVENTPIPE_"


class ConfigError(EventpipeError, ValueError):
    """A configuration value is missing or malformed; the message says which and what is expected."""

    exit_code = 2
    hint = "fix the environment variable or TOML key named above, then run the command again"


class PoolSpec(BaseModel):
    """A named worker pool: which queues (glob patterns) and how many processes x threads."""

    queues: list[str] = Field(default_factory=lambda: ["*"])
    processes: int = Field(default=1, ge=1, le=256)
    threads: int = Field(default=8, ge=1, le=1024)
    prefetch: int = Field(default=0, ge=0, le=65535)


class Settings(BaseSettings):
    """Everything eventpipe reads from its environment. Defaults are the embedded mode."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    home: Path = Field(default=Path(".eventpipe"), description="folder for embedded state (SQLite, KV files)")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite under home")
    kv_url: str | None = Field(default=None, description="KV store URL; default sqlite:// under home")
    broker_url: str | None = Field(default=None, description="amqp:// URL; default: in-process broker")
    # lists are comma separated in the environment (NoDecode: no JSON parsing; _split_csv splits)
    broker_urls: Annotated[list[str], NoDecode] = Field(default_factory=list, description="several federated amqp:// nodes")
    management_urls: Annotated[list[str], NoDecode] = Field(default_factory=list, description="management API per node")
    task_modules: Annotated[list[str], NoDecode] = Field(default_factory=list, description="extra modules declaring @task functions")
    publish_strategy: Literal["round_robin", "least_backlog"] = Field(
        default="round_robin", description="how publishers pick a node when none is preferred"
    )
    preferred_node: str | None = Field(default=None, description="HOST:PORT publishers use first")
    consume_nodes: Annotated[list[str], NoDecode] = Field(default_factory=list, description="HOST:PORT nodes a worker consumes from")
    kv_old_url: str | None = Field(default=None, description="previous KV store: dual-write while migrating")
    redis_url: str | None = Field(default=None, description="redis:// URL for slot claims and dedupe")
    queue_prefix: str = Field(default="eventpipe.", description="prefix of every queue name")
    prefetch: int = Field(default=0, ge=0, le=65535, description="prefetch per consumer; 0: adaptive, from 2 x threads up to about 0.25 s of acks (at most 1,000)")
    confirm_window: int = Field(default=1000, ge=1, le=100000, description="max unconfirmed publishes")
    max_retries: int = Field(default=5, ge=0, le=100)
    min_backoff_ms: int = Field(default=1000, ge=1)
    max_backoff_ms: int = Field(default=300_000, ge=1)
    max_event_bytes: int = Field(default=1_000_000, ge=1024, description="largest accepted event body")
    ingest_deadline_seconds: float = Field(
        default=5.0, gt=0, le=300, description="ingest answers 503 + Retry-After when a batch is not confirmed in time"
    )
    max_attachment_bytes: int = Field(
        default=100 * 1024 * 1024, ge=0, description="largest total of attachments in one envelope (not counted in the event)"
    )
    worker_recycle_tasks: int = Field(default=0, ge=0, description="recycle a worker child after N tasks")
    worker_recycle_rss_mb: int = Field(default=0, ge=0, description="recycle a worker child above N MB RSS")
    shutdown_grace_seconds: float = Field(default=30.0, gt=0)
    lag_threshold_seconds: float = Field(default=60.0, gt=0)
    backlog_threshold: int = Field(default=100_000, ge=1)
    pools: dict[str, PoolSpec] = Field(default_factory=dict, description="worker pools; JSON in the environment")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="WARNING", description="log level of worker processes"
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="each worker process serves /metrics on the first free port from here"
    )
    metrics_local: bool = Field(default=False, description="serve workers' /metrics on 127.0.0.1 only")
    auto_rebalance: bool = Field(default=False, description="run `ops rebalance` every 60 s as a periodic task")
    # notifications: digests, SMTP, webhooks
    smtp_url: str | None = Field(
        default=None, description="smtp://[user:password@]host:port[?starttls=true] or smtps://; unset: email is not sent"
    )
    email_from: str = Field(default="eventpipe@localhost", description="From: address of notification email")
    webhook_secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key signing webhook bodies")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1, le=100, description="then the delivery is dead-lettered")
    digest_delay_seconds: float = Field(default=300.0, ge=0, description="minimum delay between digests of a project")
    digest_max_delay_seconds: float = Field(default=1800.0, ge=0, description="longest a notification waits for its digest")
    web_secret: str | None = Field(
        default=None, description="key signing web console sessions; default: generated once under home"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("queue_prefix")
    @classmethod
    def _prefix_chars(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or len(v) > 64:
            raise ValueError("a non-empty name of at most 64 characters without spaces, e.g. 'eventpipe.'")
        return v

    @field_validator("broker_urls", "management_urls", "consume_nodes", "task_modules", mode="before")
    @classmethod
    def _split_csv(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("smtp://", "smtps://")):
            raise ValueError("an smtp://host:port or smtps://host:port URL (add ?starttls=true for STARTTLS)")
        return v

    @field_validator("broker_url", "broker_urls")
    @classmethod
    def _amqp(cls, v: Any) -> Any:
        for url in [v] if isinstance(v, str) else (v or []):
            if not url.startswith(("amqp://", "amqps://")):
                raise ValueError(f"an amqp:// or amqps:// URL, got {url.split('@')[-1]!r}")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file_path()))

    # Derived values --------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        """True when no broker is configured: everything runs in this process."""
        return not (self.broker_url or self.broker_urls)

    @property
    def amqp_urls(self) -> list[str]:
        return list(self.broker_urls) or ([self.broker_url] if self.broker_url else [])

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'metadata.sqlite3').resolve()}"

    def resolved_kv_url(self) -> str:
        # SQLite beat the filesystem in every measured pattern (docs/benchmarks-kv.md)
        return self.kv_url or f"sqlite:///{(self.home / 'bodies.sqlite3').resolve()}"


def config_file_path() -> Path | None:
    """The TOML file to read: ``EVENTPIPE_CONFIG`` (which must exist), else ``./eventpipe.toml`` if present."""
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"EVENTPIPE_CONFIG: no file at {explicit!r}; point it at a TOML file or unset it")
        return path
    default = Path("eventpipe.toml")
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Build and validate Settings; translate pydantic's errors into ones naming the variable."""
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{config_file_path()}: cannot read the TOML config file ({exc}); fix it or unset EVENTPIPE_CONFIG"
        ) from None
    except SettingsError as exc:  # a value the environment source could not decode (pools: JSON)
        match = re.search(r'field "([a-z_]+)"', str(exc))
        var = ENV_PREFIX + (match.group(1).upper() if match else "*")
        raise ConfigError(f"{var}: expected JSON, e.g. {var}='{{\"events\": {{\"processes\": 2}}}}' ({exc.__cause__ or exc})") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            top = str(err["loc"][0]) if err["loc"] else field
            var = ENV_PREFIX + top.upper()
            given = _redact(err.get("input"))
            problems.append(f"{var} (TOML key '{field}'): {err['msg']}; got {given!r}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def _redact(value: Any) -> Any:
    """Credentials in URLs never reach an error message or a log."""
    from eventpipe.errors import redact_url

    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
