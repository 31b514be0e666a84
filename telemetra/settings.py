"""All configuration, read from the environment (prefix ``TELEMETRA_``) and ``.env``."""

from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_KEY = "dev-secret-change-me-this-is-not-secret"
DEV_ADMIN_PASSWORD = "telemetra-admin"  # what `make run` uses when none is configured


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class SignupMode(StrEnum):
    single = "single"
    tenant = "tenant"
    closed = "closed"


class LogFormat(StrEnum):
    text = "text"
    json = "json"  # one JSON object a line, with the request id


class MqttAuth(StrEnum):
    dynsec = "dynsec"  # the platform provisions device logins and ACLs (Mosquitto dynsec)
    open = "open"      # development: any client may publish; the topic names the device


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELEMETRA_", env_file=".env", extra="ignore")

    env: Environment = Environment.development
    database_url: str = "sqlite:///./telemetra.db"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)  # `telemetra serve` processes (--workers wins)
    secret_key: str = Field(default=DEV_SECRET_KEY, repr=False)
    signup_mode: SignupMode = SignupMode.single
    admin_username: str | None = None
    admin_password: str | None = Field(default=None, repr=False)
    admin_email: str | None = None
    default_organization: str = "Default"
    access_token_minutes: int = Field(default=15, gt=0)
    refresh_token_days: int = Field(default=30, gt=0)
    cors_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.text
    # GET /metrics (Prometheus) asks for this as a bearer token when set.
    metrics_token: str = Field(default="", repr=False)
    max_body_bytes: int = Field(default=1_048_576, gt=0)  # an ingestion body
    # Any other body but imports' (which stream): a 413 past it, while it is read.
    max_request_bytes: int = Field(default=65_536, gt=0)
    ingest_queue_rows: int = Field(default=200_000, gt=0)
    ingest_batch_rows: int = Field(default=50_000, gt=0)
    maintenance_seconds: float = Field(default=3600, gt=0)
    # Readings (API.md, "Ingestion"): the times a reading may have, the sensors it may create.
    min_reading_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    max_future_seconds: float = Field(default=300, ge=0)
    max_new_sensors_per_request: int = Field(default=100, ge=0)
    max_sensors_per_device: int = Field(default=1000, ge=0)
    # The ingestion path's caches (LRU, no expiry; changes make them forget): sensors, devices
    # and organizations held at most. Memory stays flat however many have been seen.
    sensor_cache_size: int = Field(default=100_000, ge=0)
    device_cache_size: int = Field(default=20_000, ge=0)
    organization_cache_size: int = Field(default=2_000, ge=0)
    # Requests' database work: a transaction past this is stopped (503 query_timeout).
    query_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    # Connections: the request head must arrive within http_header_timeout_seconds of the
    # connection (or, on a kept-alive connection, of its first byte); an idle kept-alive
    # connection is closed after http_keep_alive_seconds.
    http_header_timeout_seconds: float = Field(default=10, gt=0, le=600)
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=600)
    # Redis pub/sub carries committed readings to the other processes' live views when set
    # (redis://host:6379/0); otherwise PostgreSQL NOTIFY, or a table on SQLite.
    redis_url: str = Field(default="", repr=False)
    # Live sockets: messages queued per socket (past it the oldest are dropped for that socket
    # alone, which then gets "lagged"), how often their tokens are checked again, and how
    # often readings are sent at most.
    live_queue_messages: int = Field(default=1000, ge=1, le=1_000_000)
    live_recheck_seconds: float = Field(default=30, gt=0, le=3600)
    # Readings committed faster than this are sent together (one message per device).
    live_flush_seconds: float = Field(default=0.1, ge=0, le=5)
    # MQTT (off unless mqtt_url is set): mqtt://user:pass@host:1883 or mqtts://...
    mqtt_url: str | None = Field(default=None, repr=False)
    mqtt_prefix: str = Field(default="telemetra", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    mqtt_auth: MqttAuth = MqttAuth.dynsec
    mqtt_client_id: str | None = Field(default=None, max_length=64)
    mqtt_share_group: str = Field(default="telemetra", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    mqtt_receive_maximum: int = Field(default=1000, ge=1, le=65535)
    mqtt_session_expiry_seconds: int = Field(default=7 * 86400, ge=0)
    mqtt_ca_file: str | None = None
    # Verified device keys each process keeps (least recently used dropped past it), and how
    # long one is trusted at most without a change being heard of.
    device_key_cache_size: int = Field(default=100_000, gt=0)
    device_key_cache_seconds: float = Field(default=3600, gt=0)
    # MQTT keep-alive: the broker drops the platform's connection after 1.5 times this silent.
    mqtt_keepalive_seconds: int = Field(default=30, ge=2, le=3600)
    # Webhooks (API.md, Alerts): a delivery is retried with back-off for this long, and each
    # attempt waits this long at most for the receiver's answer.
    webhook_retry_hours: float = Field(default=24, gt=0, le=24 * 30)
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=120)
    # http_pull connectors (API.md, Connectors) fetch from the server's own network: when set,
    # only these hosts (``*.example.com`` for its subdomains), comma-separated.
    connector_allowed_hosts: Annotated[list[str], NoDecode] = []
    # Plans (API.md, "Plans"; telemetra.orgs.plans): JSON {"name": {"devices", "readings_per_day",
    # "retention_days", "alert_rules"}} replacing or adding plans of the built-in table (a
    # limit left out or null: none). New organizations get default_plan.
    plans: dict[str, dict[str, int | None]] = {}
    default_plan: str = Field(default="unlimited", min_length=1, max_length=50)
    # Each process adds its readings counted to the shared daily counters this often.
    usage_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    # Rate limits (telemetra.kit.ratelimit): "N/second|minute|hour|day", or "off".
    rate_limit_ingest: str = "1000/second"  # per device key
    rate_limit_api: str = "1200/minute"  # per user
    rate_limit_login: str = "10/minute"  # per client address, and per username
    # Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: Annotated[list[str], NoDecode] = []

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("connector_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip().lower() for host in value.split(",") if host.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [proxy.strip() for proxy in value.split(",") if proxy.strip()]
        return value

    @field_validator("rate_limit_ingest", "rate_limit_api", "rate_limit_login")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse  # the library's own syntax, checked at start-up

        value = value.strip()
        if value.lower() != "off":
            try:
                parse(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a rate limit: write e.g. 1000/second, "
                                 "1200/minute, or off") from None
        return value

    @field_validator("min_reading_time")
    @classmethod
    def _utc_min_reading_time(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("TELEMETRA_MQTT_URL must start with mqtt:// or mqtts://")
        return value or None

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env is Environment.production:
            if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
                raise ValueError(
                    "TELEMETRA_SECRET_KEY must be set to a random value of at least 32 characters "
                    "when TELEMETRA_ENV=production"
                )
            if self.admin_password == DEV_ADMIN_PASSWORD:
                raise ValueError("TELEMETRA_ADMIN_PASSWORD is the development default; "
                                 "choose another when TELEMETRA_ENV=production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
