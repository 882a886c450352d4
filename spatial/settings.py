"""Settings, one small class per concern, read from ``SPATIAL_*`` environment variables.

Callers build a :class:`Settings` and pass it down explicitly; nothing reads the
environment behind their back, so tests construct their own settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-secret-change-me-before-production"  # noqa: S105 - the documented default


def project_root() -> Path:
    """The source checkout this package runs from, or the working directory if installed.

    The embedded cluster lives under ``var/`` of the checkout, so ``spatial db status``
    finds the same cluster whichever directory it is run from.
    """
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "spatial").is_dir():
        return here
    return Path.cwd()


class DatabaseSettings(BaseSettings):
    """Where the database is. With no URL, the platform runs its own embedded cluster."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_DATABASE_", extra="ignore")

    url: SecretStr | None = None
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    statement_timeout_ms: int = Field(default=60_000, ge=0)
    pool_timeout_s: float = Field(default=10, gt=0)
    """How long a request waits for a connection (a busy pool, or the database coming
    back) before it is answered 503."""
    replica_urls: list[SecretStr] = Field(default_factory=list)
    """Streaming replicas of the database (a JSON list of URLs); reads that tolerate lag
    go there (:mod:`api.replicas`). None by default."""
    replica_max_lag_s: float = Field(default=5.0, ge=0)
    """A replica further behind the primary than this is not read from."""


class EmbeddedSettings(BaseSettings):
    """The private PostGIS cluster under ``var/`` (used only when no URL is set)."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_EMBEDDED_", extra="ignore")

    os_user: str = "postgres"
    """Unprivileged account that owns and runs the cluster when we are root."""
    port: int | None = Field(default=None, ge=1024, le=65535)
    """Fixed TCP port on 127.0.0.1; by default one is chosen at first start and kept."""
    database: str = "spatial"
    superuser: str = "spatial"


class ServerSettings(BaseSettings):
    """The HTTP API."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_SERVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None
    """Base URL as clients see it behind a proxy; by default taken from each request."""
    default_limit: int = Field(default=10, ge=1)
    """Features in a page when the request gives no ``limit``."""
    max_limit: int = Field(default=10_000, ge=1)
    """The most features in one page (a larger ``limit`` is lowered to it)."""
    cors_origins: list[str] = Field(default_factory=list)
    """Web origins (``https://maps.city.gov.cn``) whose pages may call the API from a
    browser; none by default (``*``: any)."""
    max_edit_mb: int = Field(default=16, ge=1)
    """Largest request body of a feature edit, in MiB."""
    max_body_mb: int = Field(default=16, ge=1)
    """Largest request body the API reads (uploads excepted: SPATIAL_INGEST_MAX_UPLOAD_MB),
    in MiB; a larger one is refused with 413 before it is read."""
    basemap_url: str = ""
    """XYZ tile URL template of the HTML pages' basemap (``{z}/{x}/{y}``); none by
    default, since users are offline. Set it to a tile server on the government network."""
    basemap_attribution: str = ""


class IngestSettings(BaseSettings):
    """Limits on what a file or an upload may cost the platform before it is refused."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_INGEST_", extra="ignore")

    max_upload_mb: int = Field(default=2048, ge=1)
    """Largest accepted upload (the request body), in MiB."""
    max_archive_members: int = Field(default=5000, ge=1)
    """Most entries an archive may hold (a File Geodatabase has tens per layer)."""
    max_uncompressed_mb: int = Field(default=2048, ge=1)
    """Most bytes an archive may expand to, counted while extracting (zip bombs)."""
    max_raster_bands: int = Field(default=200, ge=1)
    """Most bands a raster file may declare."""
    max_raster_gb: float = Field(default=64.0, gt=0)
    """Largest declared uncompressed size of a raster file, in GiB (decompression bombs)."""


class TilesSettings(BaseSettings):
    """The vector tile engine and its cache."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_TILES_", extra="ignore")

    cache_mb: int = Field(default=256, ge=0)
    """Memory each API worker gives to cached tiles (0: no memory tier)."""
    disk_cache_dir: Path | None = None
    """A folder for the shared disk tier (``spatial tiles seed`` writes there); none by
    default."""
    max_features: int = Field(default=20_000, ge=1)
    """Most features of one layer in one tile."""
    max_zoom: int = Field(default=22, ge=0, le=24)
    """The deepest zoom served (a deeper tile is a 404 that says so)."""
    gzip: bool = True
    """Compress tiles for clients that accept gzip."""


class AuthSettings(BaseSettings):
    """Signing in, and how much a caller may ask."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_AUTH_", extra="ignore")

    anonymous: bool = True
    """Whether callers without credentials may read public collections (if not, every
    request but signing in needs a key or a token)."""
    token_minutes: int = Field(default=60, ge=1)
    """How long a bearer token from ``POST /auth/token`` is valid."""
    rate_per_minute: int = Field(default=0, ge=0)
    """Requests one user (or, without credentials, one address) may make per minute and
    worker; 0, the default, sets no limit (a map view asks for hundreds of tiles a minute,
    and behind a proxy every anonymous caller shares the proxy's address)."""
    failures: int = Field(default=5, ge=1)
    """Failed sign-ins of one user name before it is locked for the window."""
    address_failures: int = Field(default=20, ge=1)
    """Failed sign-ins and unknown keys from one address before it is locked."""
    failure_window_s: int = Field(default=900, ge=1)
    """The window those failures are counted over (and the longest lock)."""
    oidc_issuer: str | None = None
    """An external OpenID Connect issuer whose tokens are accepted (its ``iss``)."""
    oidc_jwks_url: str | None = None
    """Where the issuer publishes its signing keys (JWKS); needed with an issuer."""
    oidc_audience: str | None = None
    """The ``aud`` the issuer's tokens must carry for this platform."""
    oidc_username_claim: str = "preferred_username"
    """The claim naming the platform user an external token acts as."""


class GpsSettings(BaseSettings):
    """How GPS fixes are checked before they are stored."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_GPS_", extra="ignore")

    auto_register: bool = False
    """Register unknown devices on their first fix (else their fixes are refused and
    counted)."""
    max_speed_kmh: float = Field(default=300.0, gt=0)
    """A fix implying a faster move from the device's previous one is a jump (refused)."""
    max_future_s: int = Field(default=300, ge=0)
    """How far a fix's time may run ahead of the server's clock."""
    max_hdop: float = Field(default=20.0, gt=0)
    """Fixes with a larger horizontal dilution of precision are refused as low quality."""


class MapsSettings(BaseSettings):
    """The web maps (``/maps``)."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_MAPS_", extra="ignore")

    subsystems_dir: Path | None = None
    """Where the subsystem definitions (``*.yaml``) are; the shipped ``layers/subsystems``
    by default. (The basemap is the server's: ``SPATIAL_SERVER_BASEMAP_URL``.)"""


class NetworkSettings(BaseSettings):
    """Road networks and routing."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_NETWORK_", extra="ignore")

    closures_department: str = "emergency"
    """The department whose editors and stewards (and admins) close roads
    (``/network/closures``)."""
    max_closure_days: int = Field(default=366, ge=1)
    """The longest a road closure may last (a longer one is a change of the roads)."""


class CommandSettings(BaseSettings):
    """Emergency command: incidents, units and dispatch (:mod:`spatial.command`)."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_COMMAND_", extra="ignore")

    network: str = "roads"
    """The road network units are routed on."""
    stale_after_s: float = Field(default=300.0, gt=0)
    """A unit whose latest fix is older than this is not offered as a candidate (the
    answer lists it as excluded, with the fix's age)."""
    on_scene_m: float = Field(default=50.0, gt=0, le=5000)
    """A dispatched unit with a fix this close to its incident is on scene."""
    max_units: int = Field(default=20, ge=1, le=200)
    """The most candidates with routes one answer gives, and units one dispatch assigns."""


class SensorThingsSettings(BaseSettings):
    """Sensor readings: OGC SensorThings at ``/sta/v1.1`` (:mod:`spatial.sta`)."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_STA_", extra="ignore")

    default_top: int = Field(default=100, ge=1)
    """Entities in a page when the request gives no ``$top``."""
    max_top: int = Field(default=10_000, ge=1)
    """The most entities in one page (a larger ``$top`` is lowered to it, with a next link)."""
    max_future_s: int = Field(default=300, ge=0)
    """How far a reading's phenomenon time may run ahead of the server's clock."""
    max_array: int = Field(default=100_000, ge=1)
    """The most readings one DataArray request may carry."""
    mqtt_url: str | None = None
    """The MQTT broker (``mqtt://host:port``) of the SensorThings MQTT extension; none by
    default."""
    alarms_dir: Path | None = None
    """Where the alarm rules (``<subsystem>.yaml``) are; the shipped ``layers/alarms`` by
    default."""


class Settings(BaseSettings):
    """All settings of one platform instance."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Field(default_factory=lambda: project_root() / "var")
    """Runtime state: the embedded cluster, logs, pid files."""
    data_dir: Path = Field(default_factory=lambda: project_root() / "var" / "data")
    """The store of raster files (COGs) and uploads."""
    samples_dir: Path = Field(default_factory=lambda: project_root() / "data-samples")
    raster_store: str | None = None
    """Where raster files (COGs) are stored: a folder (default ``<data_dir>/rasters``) or
    ``s3://bucket/prefix`` on an S3-compatible object store (AWS_* credentials)."""
    s3_endpoint_url: str | None = None
    """The S3-compatible server of an ``s3://`` raster store (MinIO, Ceph); AWS if unset."""
    secret_key: SecretStr = SecretStr(DEV_SECRET)

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    tiles: TilesSettings = Field(default_factory=TilesSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    gps: GpsSettings = Field(default_factory=GpsSettings)
    maps: MapsSettings = Field(default_factory=MapsSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    command: CommandSettings = Field(default_factory=CommandSettings)
    sta: SensorThingsSettings = Field(default_factory=SensorThingsSettings)

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        secret = self.secret_key.get_secret_value()
        if self.environment == "production" and (secret == DEV_SECRET or len(secret) < 32):
            msg = (
                "SPATIAL_SECRET_KEY must be set to a private value of at least 32 characters "
                "in production (it signs bearer tokens)"
            )
            raise ValueError(msg)
        return self

    @property
    def uses_embedded(self) -> bool:
        """True when no external database URL is configured."""
        return self.database.url is None
