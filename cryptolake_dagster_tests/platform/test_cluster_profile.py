"""The cluster profile (docker-compose.yml) checked offline, without a Docker engine.

The compose file is parsed with PyYAML and its ``${VAR:-default}`` interpolation resolved to the defaults (what
``docker compose up`` uses with no .env file). The CryptoLake services' environments are then fed to the real
``Settings`` and ``spark_conf``, so a renamed setting, a typo in a CRYPTOLAKE_* key or an endpoint that points at no
service fails here rather than in a container.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyspark
import pytest
import yaml
from pydantic import ValidationError

from cryptolake.lakehouse.catalog import catalog_kind, pyiceberg_properties
from cryptolake.lakehouse.spark import ICEBERG_JAR, spark_conf
from cryptolake.settings import REPO_ROOT, Settings
from cryptolake_platform.cli import build_parser

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKER_DIR = REPO_ROOT / "infra" / "docker"
APP_DOCKERFILE = DOCKER_DIR / "app.Dockerfile"
SPARK_DOCKERFILE = DOCKER_DIR / "spark.Dockerfile"
SPARK_DEFAULTS = REPO_ROOT / "infra" / "spark" / "spark-defaults.conf"
DAGSTER_YAML = DOCKER_DIR / "dagster.yaml"

PREFIX = "CRYPTOLAKE_"
CRYPTOLAKE_SERVICES = {
    "lakehouse-init",
    "simulator",
    "producer",
    "bronze-writer",
    "dagster-webserver",
    "dagster-daemon",
    "api",
    "dashboard",
}
SPARK_DRIVER_SERVICES = {"bronze-writer", "dagster-daemon", "dagster-webserver"}
DAGSTER_SERVICES = {"dagster-webserver", "dagster-daemon"}
# Keys that configure libraries, not CryptoLake: the AWS default credential chain (Spark's S3FileIO, pyarrow) and
# Dagster's PostgreSQL storage (infra/docker/dagster.yaml). S3 endpoint and region are CRYPTOLAKE_S3_* settings.
LIBRARY_KEYS = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "DAGSTER_POSTGRES_HOST",
    "DAGSTER_POSTGRES_USER",
    "DAGSTER_POSTGRES_PASSWORD",
    "DAGSTER_POSTGRES_DB",
}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<default>[^}]*)\}")


# --- helpers ---------------------------------------------------------------------------------------------------------
def _interpolate(value: Any) -> Any:
    """Compose interpolation with an empty shell environment: ``${X:-d}`` -> d, ``$$`` -> ``$``."""
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if isinstance(value, str):
        text = INTERPOLATION.sub(lambda m: m["default"] if m["op"] in (":-", "-") else "", value)
        return text.replace("$$", "$")
    return value


def _env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(key): "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in raw.items()}  # fmt: skip


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def _dockerfile_args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE))


def _cluster_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """Settings exactly as the container builds them: from this environment only (no .env file, no test state)."""
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _interpolate(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _service_host_port(services: dict[str, dict[str, Any]], url: str) -> None:
    """``url`` (or ``host:port``) names a compose service (its docker DNS name) and a port."""
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    assert parsed.hostname in services, f"{url}: host {parsed.hostname!r} is not a compose service"
    assert parsed.port, f"{url}: no port"


# --- the CryptoLake services ------------------------------------------------------------------------------------
def test_cryptolake_services_are_built_from_the_app_image(services) -> None:
    app = {
        name
        for name, svc in services.items()
        if isinstance(svc.get("build"), dict)
        and (REPO_ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == APP_DOCKERFILE
    }
    assert app == CRYPTOLAKE_SERVICES
    assert len({services[name]["image"] for name in app}) == 1, "one image for every CryptoLake service"


@pytest.mark.parametrize("name", sorted(CRYPTOLAKE_SERVICES))
def test_every_cryptolake_service_sets_the_cluster_profile_and_only_real_settings(services, name) -> None:
    env = _env(services[name])
    assert env.get("CRYPTOLAKE_PROFILE") == "cluster"
    assert Settings.model_config["env_prefix"] == PREFIX
    unknown = [k for k in env if k.startswith(PREFIX) and k[len(PREFIX) :].lower() not in Settings.model_fields]
    assert not unknown, f"{name}: CRYPTOLAKE_* keys that are not Settings fields: {unknown}"
    foreign = [k for k in env if not k.startswith(PREFIX) and k not in LIBRARY_KEYS]
    assert not foreign, f"{name}: unexpected non-CryptoLake keys: {foreign}"


@pytest.mark.parametrize("name", sorted(CRYPTOLAKE_SERVICES))
def test_every_cryptolake_service_environment_validates(services, name, monkeypatch) -> None:
    env = _env(services[name])
    settings = _cluster_settings(monkeypatch, env)
    assert settings.profile == "cluster"
    assert catalog_kind(settings) == "rest"
    assert pyiceberg_properties(settings) == {
        "type": "rest",
        "uri": env["CRYPTOLAKE_CATALOG_URI"],
        "warehouse": env["CRYPTOLAKE_WAREHOUSE"],
        "s3.endpoint": env["CRYPTOLAKE_S3_ENDPOINT"],
        "s3.region": env["AWS_REGION"],
        "s3.force-virtual-addressing": "false",  # MinIO: path-style, because an endpoint is set
    }
    _service_host_port(services, settings.s3_endpoint)
    _service_host_port(services, settings.resolved_catalog_uri)
    for server in settings.kafka_bootstrap_servers.split(","):
        _service_host_port(services, server)


def test_bronze_writer_environment_builds_the_cluster_spark_conf(services, monkeypatch) -> None:
    env = _env(services["bronze-writer"])
    settings = _cluster_settings(monkeypatch, env)
    conf = spark_conf(settings, "cryptolake-bronze-writer")
    catalog = f"spark.sql.catalog.{settings.catalog_name}"

    assert conf["spark.master"] == env["CRYPTOLAKE_SPARK_MASTER"] == "spark://spark-master:7077"
    assert conf[f"{catalog}.type"] == "rest"
    assert conf[f"{catalog}.uri"] == env["CRYPTOLAKE_CATALOG_URI"] == "http://iceberg-rest:8181"
    assert conf[f"{catalog}.warehouse"] == env["CRYPTOLAKE_WAREHOUSE"] == "s3://warehouse/"
    assert not [key for key in conf if key.startswith(f"{catalog}.jdbc")], "no JDBC settings with a REST catalog"
    jars = conf["spark.jars"].split(",")
    assert Path(jars[0]).name == ICEBERG_JAR
    assert env["CRYPTOLAKE_SPARK_EXTRA_JARS"] in jars

    master = urlparse(conf["spark.master"])
    assert master.hostname in services
    assert f"--port\0{master.port}" in "\0".join(services[master.hostname]["command"])
    rest = urlparse(conf[f"{catalog}.uri"])
    assert str(rest.port) == _env(services[rest.hostname])["REST_PORT"]
    assert _env(services[rest.hostname])["CATALOG_WAREHOUSE"] == conf[f"{catalog}.warehouse"]
    kafka_host = settings.kafka_bootstrap_servers
    assert kafka_host in _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]


@pytest.mark.parametrize("name", sorted(SPARK_DRIVER_SERVICES))
def test_spark_drivers_agree_on_master_catalog_and_jars(services, name, monkeypatch) -> None:
    reference = spark_conf(_cluster_settings(monkeypatch, _env(services["bronze-writer"])))
    conf = spark_conf(_cluster_settings(monkeypatch, _env(services[name])))
    shared = [k for k in reference if k.startswith(("spark.master", "spark.jars", "spark.sql.catalog"))]
    assert {k: conf[k] for k in shared} == {k: reference[k] for k in shared}


def test_cluster_profile_without_endpoints_names_the_missing_keys(monkeypatch) -> None:
    _cluster_settings(monkeypatch, {})
    with pytest.raises(ValidationError) as missing_all:
        Settings(profile="cluster", _env_file=None)
    for key in ("CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS", "CRYPTOLAKE_CATALOG_URI", "CRYPTOLAKE_WAREHOUSE"):
        assert key in str(missing_all.value)

    with pytest.raises(ValidationError) as missing_two:
        Settings(profile="cluster", kafka_bootstrap_servers="kafka:9092", _env_file=None)
    message = str(missing_two.value)
    assert "CRYPTOLAKE_CATALOG_URI" in message and "CRYPTOLAKE_WAREHOUSE" in message
    assert "CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS" not in message

    # The same through the environment, as in a container started without them.
    monkeypatch.setenv("CRYPTOLAKE_PROFILE", "cluster")
    monkeypatch.setenv("CRYPTOLAKE_CATALOG_URI", "http://iceberg-rest:8181")
    with pytest.raises(ValidationError) as from_env:
        Settings(_env_file=None)
    assert "CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS" in str(from_env.value)
    assert "CRYPTOLAKE_CATALOG_URI" not in str(from_env.value)


def test_commands_run_real_entry_points(services) -> None:
    for name in CRYPTOLAKE_SERVICES:
        command = services[name]["command"]
        if command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, f"{name}: no module {command[2]}"
        if "run" in command and "streamlit" in command:
            assert (REPO_ROOT / command[command.index("run") + 1]).is_file(), f"{name}: no dashboard script"
        if "-w" in command:
            assert (REPO_ROOT / command[command.index("-w") + 1]).is_file(), f"{name}: no Dagster workspace"
        if command[0] == "cryptolake":
            build_parser().parse_args(command[1:])  # a real subcommand, or SystemExit


# --- wiring: dependencies, healthchecks, files -----------------------------------------------------------------
def test_depends_on_targets_exist_with_the_right_conditions(services) -> None:
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target!r}"
            assert not services[target].get("profiles") or service.get("profiles"), (
                f"{name} (always started) depends on {target}, which only runs with a profile"
            )
            if condition == "service_healthy":
                check = services[target].get("healthcheck")
                assert check and not check.get("disable") and check.get("test"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} is one-shot: restart must be 'no'"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition!r}"


def test_dependency_graph_has_no_cycle(services) -> None:
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "active", f"dependency cycle: {' -> '.join([*path, name])}"
        state[name] = "active"
        for target in _depends_on(services[name]):
            visit(target, [*path, name])
        state[name] = "done"

    for name in services:
        visit(name, [])


def test_long_running_app_services_have_a_restart_policy_and_http_ones_a_healthcheck(services) -> None:
    for name in CRYPTOLAKE_SERVICES - {"lakehouse-init"}:
        assert services[name].get("restart") == "unless-stopped", name
    for name in ("api", "dashboard", "dagster-webserver", "dagster-daemon"):
        assert services[name].get("healthcheck", {}).get("test"), name


def test_build_contexts_dockerfiles_and_bind_mounts_exist(services) -> None:
    for name, service in services.items():
        if isinstance(service.get("build"), dict):
            context = REPO_ROOT / service["build"]["context"]
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name}: bind mount source {source} missing"


def test_published_host_ports_are_unique(services) -> None:
    published = [
        port.rsplit(":", 2)[-2] if port.count(":") >= 1 else port
        for service in services.values()
        for port in service.get("ports", [])
    ]
    assert len(published) == len(set(published)), published


# --- versions and S3 settings shared by driver, executors, REST server and pyiceberg ------------------------------
def test_images_match_the_driver_versions() -> None:
    iceberg_version = re.fullmatch(r"iceberg-spark-runtime-3\.5_2\.12-(.+)\.jar", ICEBERG_JAR)[1]
    assert _dockerfile_args(APP_DOCKERFILE)["ICEBERG_VERSION"] == iceberg_version
    spark_args = _dockerfile_args(SPARK_DOCKERFILE)
    assert spark_args["ICEBERG_VERSION"] == iceberg_version
    tag = spark_args["SPARK_IMAGE"].split(":", 1)[1]
    assert tag.split("-")[0] == pyspark.__version__, "Spark cluster and pyspark driver must be the same release"
    assert "scala2.12" in tag and "java17" in tag


def test_extra_jar_and_conf_dir_are_where_the_app_image_puts_them(services) -> None:
    dockerfile = APP_DOCKERFILE.read_text(encoding="utf-8")
    jar = _env(services["bronze-writer"])["CRYPTOLAKE_SPARK_EXTRA_JARS"]
    download = rf"^ADD .*iceberg-aws-bundle-\$\{{ICEBERG_VERSION\}}\.jar\s*\\\n\s*{re.escape(jar)}\s*$"
    assert re.search(download, dockerfile, flags=re.MULTILINE), f"app.Dockerfile does not put the AWS bundle at {jar}"
    workdir = re.search(r"^WORKDIR\s+(\S+)", dockerfile, flags=re.MULTILINE)[1]
    conf_dir = re.search(r"SPARK_CONF_DIR=(\S+)", dockerfile)[1]
    assert Path(conf_dir).relative_to(workdir) == SPARK_DEFAULTS.parent.relative_to(REPO_ROOT)
    assert "cp infra/docker/dagster.yaml /opt/dagster/home/dagster.yaml" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile


def test_spark_conf_gives_the_catalog_s3_on_minio_like_the_rest_server(services, monkeypatch) -> None:
    settings = _cluster_settings(monkeypatch, _env(services["bronze-writer"]))
    conf = spark_conf(settings)
    catalog = f"spark.sql.catalog.{settings.catalog_name}"
    assert conf[f"{catalog}.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert conf[f"{catalog}.s3.path-style-access"] == "true"
    endpoint = conf[f"{catalog}.s3.endpoint"]
    assert endpoint == settings.s3_endpoint and urlparse(endpoint).hostname == "minio" and "minio" in services
    assert not any(key.endswith(("access-key-id", "secret-access-key")) for key in conf), "credentials: AWS_* chain"

    # spark-defaults.conf (SPARK_CONF_DIR in the image) must not contradict spark_conf, which wins.
    defaults = dict(
        line.split(None, 1)
        for line in SPARK_DEFAULTS.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    defaults = {key: value.strip() for key, value in defaults.items()}
    assert not [key for key in defaults if key.startswith("spark.sql.catalog.")], "catalog settings live in spark_conf"
    clashes = {key: (defaults[key], conf[key]) for key in defaults.keys() & conf.keys() if defaults[key] != conf[key]}
    assert not clashes, clashes

    rest = _env(services["iceberg-rest"])
    assert rest["CATALOG_S3_ENDPOINT"] == endpoint
    assert rest["CATALOG_IO__IMPL"] == conf[f"{catalog}.io-impl"]
    assert rest["CATALOG_S3_PATH__STYLE__ACCESS"] == conf[f"{catalog}.s3.path-style-access"]
    for name in ("iceberg-rest", "spark-worker", *sorted(SPARK_DRIVER_SERVICES)):
        env = _env(services[name])
        assert env["AWS_ACCESS_KEY_ID"] == _env(services["minio"])["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == _env(services["minio"])["MINIO_ROOT_PASSWORD"], name
        assert env["AWS_REGION"] == conf[f"{catalog}.client.region"], name
    bucket = urlparse(settings.resolved_warehouse).netloc
    assert f"mc mb --ignore-existing lake/{bucket}" in " ".join(services["minio-init"]["command"])


def test_s3_settings_map_to_both_clients(monkeypatch) -> None:
    settings = _cluster_settings(monkeypatch, {})
    base = {"warehouse": "s3://bucket/lake", "s3_region": "eu-west-1", "_env_file": None}
    aws = Settings(**base)  # AWS S3 itself: no endpoint, virtual-hosted addressing
    assert pyiceberg_properties(aws)["s3.force-virtual-addressing"] == "true"
    assert "s3.endpoint" not in pyiceberg_properties(aws)
    minio = Settings(**base, s3_endpoint="http://127.0.0.1:9000", s3_access_key_id="key", s3_secret_access_key="secret")
    props = pyiceberg_properties(minio)
    assert (props["s3.endpoint"], props["s3.region"], props["s3.force-virtual-addressing"]) == (
        "http://127.0.0.1:9000", "eu-west-1", "false"
    )  # fmt: skip
    assert (props["s3.access-key-id"], props["s3.secret-access-key"]) == ("key", "secret")
    assert "secret'" not in repr(minio)  # a SecretStr
    conf = spark_conf(minio)
    catalog = f"spark.sql.catalog.{minio.catalog_name}"
    assert conf[f"{catalog}.client.region"] == "eu-west-1" and conf[f"{catalog}.s3.secret-access-key"] == "secret"
    assert conf[f"{catalog}.s3.path-style-access"] == "true"
    local = spark_conf(settings)  # a file:// warehouse gets no S3 properties
    assert not [key for key in local if ".s3." in key or key.endswith(".io-impl")]


def test_dagster_instance_uses_postgres_from_the_compose_environment(services) -> None:
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    instance = yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))
    result = validate_config(dagster_instance_config_schema(), instance)
    assert result.success, result.errors
    db = instance["storage"]["postgres"]["postgres_db"]
    env_keys = {value["env"] for value in db.values() if isinstance(value, dict)}
    assert env_keys == {
        "DAGSTER_POSTGRES_HOST",
        "DAGSTER_POSTGRES_USER",
        "DAGSTER_POSTGRES_PASSWORD",
        "DAGSTER_POSTGRES_DB",
    }
    postgres = _env(services["postgres"])
    for name in DAGSTER_SERVICES:
        env = _env(services[name])
        assert env["DAGSTER_POSTGRES_HOST"] in services
        assert env["DAGSTER_POSTGRES_USER"] == postgres["POSTGRES_USER"]
        assert env["DAGSTER_POSTGRES_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
        assert _depends_on(services[name]).get("postgres") == "service_healthy"
        # Compute logs are written by runs in the daemon and read by the webserver: one shared volume.
        mounts = [v.split(":")[1] for v in services[name].get("volumes", []) if isinstance(v, str)]
        assert any(instance["compute_logs"]["config"]["base_dir"].startswith(m) for m in mounts), name
    init_sql = (DOCKER_DIR / "postgres" / "init-databases.sql").read_text(encoding="utf-8")
    assert f"CREATE DATABASE {_env(services['dagster-daemon'])['DAGSTER_POSTGRES_DB']};" in init_sql
    catalog_db = urlparse(_env(services["iceberg-rest"])["CATALOG_URI"].removeprefix("jdbc:")).path.strip("/")
    assert f"CREATE DATABASE {catalog_db};" in init_sql


def test_compose_runs_without_a_dot_env_file() -> None:
    """Every ``${VAR}`` has a default, so ``docker compose up`` needs no .env file."""
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace("$$", "")
    bare = [m[0] for m in INTERPOLATION.finditer(text) if m["op"] not in (":-", "-")]
    assert not bare, f"variables without a default: {bare}"
    assert "$" not in INTERPOLATION.sub("", text), "unparsed $ interpolation"
