# syntax=docker/dockerfile:1.7
# The one CryptoLake image of the cluster profile (docker-compose.yml): producer, Bronze writer, Dagster webserver
# and daemon, API, dashboard, lakehouse bootstrap and the optional simulator. Build context: the repository root
# (app.Dockerfile.dockerignore keeps .venv, .state and build output out of it).
#
# Python 3.11 on Debian bookworm (bookworm still ships openjdk-17; newer python:*-slim tags are trixie-based).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# Must equal the Iceberg Spark runtime jar the snowpark-connect-deps-iceberg wheel ships (cryptolake/lakehouse/spark.py)
# and ICEBERG_VERSION in spark.Dockerfile: driver and executors load the same Iceberg classes.
ARG ICEBERG_VERSION=1.10.2
# dagster-postgres (run/event/schedule storage in PostgreSQL) is not a dependency of the embedded profile.
ARG DAGSTER_POSTGRES_VERSION=0.29.27

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    SPARK_CONF_DIR=/app/infra/spark

# Java 17 for the Spark driver (pyspark launches it). The man directory works around the JRE postinst on slim images.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first (cached while only the source changes): the project's pins, resolved with constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt "dagster-postgres==${DAGSTER_POSTGRES_VERSION}" \
    && rm /tmp/requirements.txt

# S3FileIO and the AWS SDK for Spark's Iceberg catalog (CRYPTOLAKE_SPARK_EXTRA_JARS points here).
ADD --chmod=644 https://repo1.maven.org/maven2/org/apache/iceberg/iceberg-aws-bundle/${ICEBERG_VERSION}/iceberg-aws-bundle-${ICEBERG_VERSION}.jar \
    /opt/cryptolake/jars/iceberg-aws-bundle.jar

RUN groupadd --gid 1000 cryptolake \
    && useradd --uid 1000 --gid 1000 --create-home cryptolake \
    && mkdir -p /var/lib/cryptolake /opt/dagster/home /opt/dagster/storage \
    && chown -R cryptolake:cryptolake /var/lib/cryptolake /opt/dagster

COPY --chown=cryptolake:cryptolake . .
# Editable install, as infra/setup.sh does: the code finds dbt_project/, workspace.yaml and serving/ next to itself.
RUN pip install --no-deps -e . --config-settings editable_mode=compat \
    && cp infra/docker/dagster.yaml /opt/dagster/home/dagster.yaml \
    && chown -R cryptolake:cryptolake /opt/dagster/home

USER cryptolake
ENTRYPOINT ["/bin/sh", "/app/infra/docker/app-entrypoint.sh"]
CMD ["cryptolake", "settings"]
