"""One typed Settings object, read from ``EVENTPIPE_*`` environment variables and an optional TOML file.

Validation happens once, at start: a bad value raises :class:`ConfigError` naming the environment
variable (or TOML key) and the expected form, so an operator can fix it without reading code.
Precedence: environment > TOML file (``EVENTPIPE_CONFIG`` or ``./eventpipe.toml``) > defaults.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "EVENTPIPE_"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says which and what is expected."""


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
    broker_urls: list[str] = Field(default_factory=list, description="several federated amqp:// nodes")
    management_urls: list[str] = Field(default_factory=list, description="management API per node")
    task_modules: list[str] = Field(default_factory=list, description="extra modules declaring @task functions")
    publish_strategy: Literal["round_robin", "least_backlog"] = Field(
        default="round_robin", description="how publishers pick a node when none is preferred"
    )
    preferred_node: str | None = Field(default=None, description="HOST:PORT publishers use first")
    consume_nodes: list[str] = Field(default_factory=list, description="HOST:PORT nodes a worker consumes from")
    kv_old_url: str | None = Field(default=None, description="previous KV store: dual-write while migrating")
    redis_url: str | None = Field(default=None, description="redis:// URL for slot claims and dedupe")
    queue_prefix: str = Field(default="eventpipe.", description="prefix of every queue name")
    prefetch: int = Field(default=0, ge=0, le=65535, description="prefetch per consumer; 0: 2 x threads")
    confirm_window: int = Field(default=1000, ge=1, le=100000, description="max unconfirmed publishes")
    max_retries: int = Field(default=5, ge=0, le=100)
    min_backoff_ms: int = Field(default=1000, ge=1)
    max_backoff_ms: int = Field(default=300_000, ge=1)
    max_event_bytes: int = Field(default=1_000_000, ge=1024, description="largest accepted event body")
    worker_recycle_tasks: int = Field(default=0, ge=0, description="recycle a worker child after N tasks")
    worker_recycle_rss_mb: int = Field(default=0, ge=0, description="recycle a worker child above N MB RSS")
    shutdown_grace_seconds: float = Field(default=30.0, gt=0)
    lag_threshold_seconds: float = Field(default=60.0, gt=0)
    backlog_threshold: int = Field(default=100_000, ge=1)
    pools: dict[str, PoolSpec] = Field(default_factory=dict)
    web_secret: str | None = Field(
        default=None, description="key signing web console sessions; default: generated once under home"
    )

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
        return (init_settings, _CsvEnvSource(settings_cls), _TomlSource(settings_cls))

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


class _CsvEnvSource(PydanticBaseSettingsSource):
    """Environment variables; list values may be comma separated, dicts are JSON (pools)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import json

        out: dict[str, Any] = {}
        known = set(self.settings_cls.model_fields)
        for key, raw in os.environ.items():
            if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
                continue
            name = key[len(ENV_PREFIX):].lower()
            if name not in known:
                continue  # unknown EVENTPIPE_* variables are ignored (tests, wrappers set their own)
            if name == "pools":
                try:
                    out[name] = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{key}: expected a JSON object of pools, got {raw!r} ({exc})") from None
            else:
                out[name] = raw
        return out


class _TomlSource(PydanticBaseSettingsSource):
    """The TOML file named by EVENTPIPE_CONFIG, else ./eventpipe.toml if present."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_file_path()
        if path is None:
            return {}
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the TOML config file ({exc}); fix it or unset EVENTPIPE_CONFIG") from None
        return data.get("eventpipe", data)


def config_file_path() -> Path | None:
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
    import re

    if isinstance(value, str):
        return re.sub(r"://[^/@\s]*@", "://***@", value)
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
