"""Typed settings for every CryptoLake component.

All keys are read from environment variables with the ``CRYPTOLAKE_`` prefix (and from an optional ``.env`` file in
the working directory). ``.env.example`` documents every key. Two profiles share one code base:

* ``local`` (embedded default): a state directory holding the warehouse and a SQLite Iceberg catalog, a local
  Kafka-protocol broker started on demand, Spark ``local[*]``.
* ``cluster``: the Kafka bootstrap servers, catalog URI, warehouse URI and Spark master are configured.
"""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptolake.contract.rules import Market

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
DEFAULT_COIN_IDS = {
    "BTC": "bitcoin",
    "ETH": "ethereum",
    "SOL": "solana",
    "BNB": "binancecoin",
    "XRP": "ripple",
    "ADA": "cardano",
    "DOGE": "dogecoin",
}


def _split_list(value: object) -> object:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every tunable of the platform. Field names map to ``CRYPTOLAKE_<NAME>`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="CRYPTOLAKE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    profile: Literal["local", "cluster"] = Field("local", description="local (embedded) or cluster.")
    state_dir: Path = Field(REPO_ROOT / ".state", description="Where the local profile keeps all its state.")
    log_level: str = Field("INFO", description="structlog level: DEBUG, INFO, WARNING, ERROR.")
    log_format: Literal["console", "json"] = Field("console", description="Human console logs or JSON lines.")

    # --- Iceberg catalog -------------------------------------------------------------------------------------
    catalog_name: str = Field("lake", description="Iceberg catalog name; Spark and pyiceberg must share it.")
    catalog_uri: str | None = Field(
        None,
        description="SQLAlchemy URI of the JDBC catalog (sqlite:///... or postgresql+psycopg2://...) or an "
        "http(s):// Iceberg REST catalog. Default: SQLite file in the state directory.",
    )
    warehouse: str | None = Field(None, description="Warehouse URI. Default: file:// under the state dir.")

    # --- Object storage of an s3:// warehouse (AWS S3 or MinIO); credentials: these or the AWS default chain ---
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint of an s3:// warehouse, e.g. http://minio:9000. Empty: AWS S3."
    )
    s3_region: str | None = Field(None, description="Region of the warehouse bucket, e.g. us-east-1.")
    s3_path_style_access: bool | None = Field(
        None, description="Path-style bucket URLs (MinIO needs them). Empty: on when CRYPTOLAKE_S3_ENDPOINT is set."
    )
    s3_access_key_id: str | None = Field(
        None, description="S3 access key. Empty: the AWS default credential chain (AWS_ACCESS_KEY_ID, ...)."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret key (with CRYPTOLAKE_S3_ACCESS_KEY_ID)."
    )

    # --- Kafka -----------------------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        None, description="Kafka bootstrap servers. Empty in the local profile: a local broker is started."
    )
    kafka_partitions: int = Field(3, ge=1, description="Partitions of the topics the platform creates.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    kafka_enable_idempotence: bool = Field(
        False,
        description="Idempotent producer. Off by default: the local broker can lose acknowledged messages "
        "with it on a crash; Bronze and Silver deduplicate on the natural key instead.",
    )
    local_broker_port: int = Field(19092, description="Port of the local broker (local profile).")

    # --- Spark -----------------------------------------------------------------------------------------------
    spark_master: str = Field("local[*]", description="Spark master URL.")
    spark_driver_memory: str = Field("1g", description="Spark driver memory.")
    spark_shuffle_partitions: int = Field(4, ge=1, description="spark.sql.shuffle.partitions.")
    spark_ui_enabled: bool = Field(False, description="Start the Spark UI for each session.")
    spark_host: bool = Field(
        True,
        description="cryptolake run starts one long-lived Spark driver that runs attach to instead of starting a "
        "JVM each (false: every run starts its own).",
    )
    spark_host_driver_memory: str = Field(
        "2g", description="Driver memory of that long-lived Spark driver (shared by the runs it serves)."
    )
    dbt_in_process: bool = Field(
        True,
        description="Run the Gold dbt build inside the run's process, on its Spark session (false: a dbt "
        "subprocess with a Spark of its own, as before).",
    )
    dbt_threads: int = Field(
        2,
        ge=1,
        description="dbt threads: models (and tests) dbt builds side by side on the Spark session (a refresh's "
        "five rollups: 2 threads measured as fast as 6 on 2 cores, see docs/benchmarks.md).",
    )
    dbt_shuffle_partitions: int = Field(
        1,
        ge=1,
        description="spark.sql.shuffle.partitions of dbt's statements (Gold reads minute and daily bars: a "
        "handful of rows next to Silver's trades, see docs/benchmarks.md).",
    )
    spark_extra_jars: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra jars (paths) for every Spark session, comma separated."
    )
    sqlite_jdbc_jar: Path = Field(
        Path("/usr/share/java/xerial-sqlite-jdbc.jar"), description="SQLite JDBC driver (Debian package)."
    )
    postgres_jdbc_jar: Path = Field(
        Path("/usr/share/java/postgresql.jar"), description="PostgreSQL JDBC driver (Debian package)."
    )

    # --- Market data -----------------------------------------------------------------------------------------
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SYMBOLS), description="Symbols to ingest, comma separated."
    )
    markets: Annotated[list[Market], NoDecode] = Field(
        default_factory=lambda: ["spot"], description="Markets to ingest: spot and/or usdm_futures."
    )
    coin_ids: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_COIN_IDS),
        description="Base asset -> CoinGecko coin id, as JSON.",
    )
    binance_ws_url: str | None = Field(
        None, description="Binance spot WebSocket base. Empty: the local exchange simulator."
    )
    binance_rest_url: str | None = Field(None, description="Binance spot REST base. Empty: the simulator.")
    binance_futures_ws_url: str | None = Field(
        None, description="Binance USD-M futures WebSocket base. Empty: the local simulator."
    )
    binance_futures_rest_url: str | None = Field(
        None, description="Binance USD-M futures REST base. Empty: the local simulator."
    )
    simulator_futures_port: int = Field(9444, description="Port of the local USD-M futures simulator.")
    ws_silence_timeout_s: float = Field(
        30.0, gt=0, description="Reconnect when a WebSocket connection is silent this long."
    )
    ws_max_connection_age_s: float = Field(
        23 * 3600.0, gt=0, description="Planned reconnect before Binance's 24 h cut-off."
    )
    producer_tail_check_s: float = Field(
        30.0, gt=0, description="A symbol silent this long is checked over REST for trades the stream missed."
    )
    producer_max_gap_repair: int = Field(
        2_000_000, ge=1, description="Largest id gap repaired from REST; larger gaps are logged and counted."
    )
    rest_weight_limit_per_minute: int = Field(
        2400, ge=1, description="REST request weight the gap repair may spend per minute (Binance: 6000)."
    )
    live: bool = Field(False, description="Use live Binance (wss://stream.binance.com:9443) in the demo.")
    simulator_port: int = Field(9443, description="Port of the local exchange simulator.")
    simulator_rate: float = Field(50.0, gt=0, description="Synthetic trades per second in the demo.")
    simulator_seed: int | None = Field(
        None, description="Seed of the synthetic market. Empty: a new seed per run (aggregate ids never collide)."
    )

    # --- Batch sources ---------------------------------------------------------------------------------------
    coingecko_base_url: str | None = Field(
        None, description="CoinGecko API base (…/api/v3). Empty: live API with --live, else the local server."
    )
    coingecko_api_key: str | None = Field(None, description="Optional CoinGecko demo API key (x-cg-demo-api-key).")
    fear_greed_base_url: str | None = Field(
        None, description="Alternative.me base URL. Empty: live API with --live, else the local server."
    )
    batch_sources_port: int = Field(9445, description="Port of the local CoinGecko / Fear & Greed server.")
    klines_start_date: date | None = Field(None, description="Binance klines history starts here (YYYY-MM-DD).")
    klines_intervals: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["1d", "1h"], description="Kline intervals to ingest, comma separated."
    )

    # --- History imports: the Dagster asset bronze/binance_klines_archive (`cryptolake import` has options) ---
    archive_root: Path | None = Field(
        None, description="Local copy of Binance's public data archives (the directory holding data/) to import."
    )
    archive_base_url: str | None = Field(
        None,
        description="Or: base URL of a mirror of Binance's public data to import from, e.g. https://data.binance.vision.",
    )
    archive_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Symbols imported from the archives. Empty: CRYPTOLAKE_SYMBOLS."
    )
    archive_markets: Annotated[list[Market], NoDecode] = Field(
        default_factory=list, description="Markets imported from the archives. Empty: CRYPTOLAKE_MARKETS."
    )
    archive_intervals: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Kline intervals imported from the archives. Empty: CRYPTOLAKE_KLINES_INTERVALS.",
    )

    # --- Bronze writer ---------------------------------------------------------------------------------------
    bronze_commit_interval_s: float = Field(30.0, gt=0, description="Seconds between Bronze commits.")
    bronze_max_batch_rows: int = Field(200_000, ge=1, description="Rows that force an early Bronze commit.")

    # --- Serving ---------------------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="FastAPI bind host.")
    api_port: int = Field(8000, description="FastAPI port.")
    api_url: str | None = Field(None, description="API base URL used by the dashboard. Default from host/port.")
    api_key: SecretStr | None = Field(
        None,
        description="When set, every /api/* request needs this value in the X-API-Key header (/health and "
        "/metrics stay open). The dashboard sends it too.",
    )
    api_snapshot_poll_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="The API asks the catalog for a table's current snapshot at most this often "
        "(seconds); new data is served within this delay of its commit.",
    )
    api_cache_entries: int = Field(
        256, ge=8, description="Loaded table parts (a small table, or one day of 1m/5m bars) the API keeps in memory."
    )
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes of the API. Each keeps its own snapshot cache (memory times N); "
        "one per core roughly doubles the requests per second on 2 cores (docs/benchmarks.md).",
    )
    # --- Pipeline status and alerts (/api/v1/pipeline/*, the alerts domain's sensors) --------------------------
    stale_after_s: float = Field(
        1800.0,
        gt=0,
        description="A layer (bronze.trades, silver.ohlcv_1m, gold.fct_ohlcv_1m) whose newest data is older than "
        "this many seconds is stale: an alert.",
    )
    alert_webhook_url: str | None = Field(
        None,
        description="When set, each new alert (failed run, failed or warning check, stale layer) is POSTed here as "
        "JSON by the Dagster alerts sensors. Empty: alerts are only recorded.",
    )
    alert_webhook_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Timeout of one webhook POST (seconds); a failed POST is logged, not retried."
    )
    dashboard_port: int = Field(8501, description="Streamlit port.")
    dagster_port: int = Field(3000, description="Dagster webserver port.")

    # --- Table maintenance (the maintenance domain's table_maintenance job, `cryptolake maintain`) -------------
    maintenance_cron: str = Field(
        "30 3 * * *",
        description="Cron (UTC) of the table_maintenance schedule: compaction, manifests, expiry, orphans.",
    )
    maintenance_schedule_running: bool = Field(
        True, description="The table_maintenance schedule starts running (false: stopped until turned on in the UI)."
    )
    maintenance_snapshot_retention_h: float = Field(
        24.0,
        ge=0,
        description="Snapshots older than this many hours are expired (time travel reaches this far back); the "
        "snapshots the Bronze sensor's cursor and the Bronze writer's Kafka offsets need are always kept.",
    )
    maintenance_orphan_older_than_h: float = Field(
        72.0,
        ge=24,
        description="Files no snapshot references are deleted once older than this many hours (at least 24: a "
        "younger one may belong to a commit in flight).",
    )
    maintenance_target_file_mb: int = Field(
        128, ge=1, description="Target size of the data files compaction writes (MiB)."
    )
    maintenance_min_input_files: int = Field(
        5, ge=2, description="A partition is compacted when it has at least this many files smaller than the target."
    )

    _split = field_validator(
        "spark_extra_jars", "symbols", "markets", "klines_intervals", "archive_symbols", "archive_markets",
        "archive_intervals", mode="before",
    )(_split_list)  # fmt: skip

    @field_validator("symbols", "archive_symbols")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [item.upper() for item in value]

    @model_validator(mode="after")
    def _cluster_needs_endpoints(self) -> Settings:
        if self.profile == "cluster":
            missing = [
                f"CRYPTOLAKE_{name.upper()}"
                for name in ("kafka_bootstrap_servers", "catalog_uri", "warehouse")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(
                    f"profile=cluster needs {', '.join(missing)}; set them (see .env.example) "
                    "or use CRYPTOLAKE_PROFILE=local"
                )
        return self

    # --- Derived values --------------------------------------------------------------------------------------
    @property
    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{self.state_dir.resolve() / 'catalog.db'}"

    @property
    def resolved_warehouse(self) -> str:
        return self.warehouse or (self.state_dir.resolve() / "warehouse").as_uri()

    @property
    def s3_warehouse(self) -> bool:
        """The warehouse lives in S3 (or an S3-compatible store such as MinIO)."""
        return self.resolved_warehouse.startswith(("s3://", "s3a://"))

    @property
    def resolved_s3_path_style_access(self) -> bool:
        return self.s3_path_style_access if self.s3_path_style_access is not None else bool(self.s3_endpoint)

    @property
    def resolved_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def spark_tmp_dir(self) -> Path:
        return self.state_dir.resolve() / "spark"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir.resolve() / "dagster"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def render_env_example() -> str:
    """The text of ``.env.example``: every setting as a commented ``CRYPTOLAKE_*`` line with its default."""
    lines = [
        "# CryptoLake settings. Every key is optional; the defaults run the embedded (local) profile.",
        "# Copy to .env or export the variables. Generated by `cryptolake env-example`; a test keeps it current.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if name == "state_dir":
            default = "<repo>/.state"
        elif isinstance(default, list):
            default = ",".join(str(item) for item in default)
        elif isinstance(default, dict):
            default = json.dumps(default, separators=(",", ":"))
        elif isinstance(default, bool):
            default = str(default).lower()
        elif default is None:
            default = ""
        lines.append(f"# {field.description}")
        lines.append(f"# CRYPTOLAKE_{name.upper()}={default}")
        lines.append("")
    return "\n".join(lines)


def settings_from_cli(**overrides: object) -> Settings:
    """Settings from the environment, with the command-line values that were given (not None) on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
