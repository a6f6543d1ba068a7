# syntax=docker/dockerfile:1.7
# Spark standalone master and worker of the cluster profile (docker-compose.yml), with Iceberg and S3FileIO.
# Build context: infra/docker (nothing is copied from it).
#
# Spark must match the pyspark the drivers run (constraints.txt: pyspark==3.5.9, Scala 2.12, Java 17).
ARG SPARK_IMAGE=apache/spark:3.5.9-scala2.12-java17-python3-ubuntu
FROM ${SPARK_IMAGE}

# Must equal the Iceberg version of the driver's runtime jar (cryptolake/lakehouse/spark.py: ICEBERG_JAR) and
# ICEBERG_VERSION in app.Dockerfile.
ARG ICEBERG_VERSION=1.10.2

USER root
# curl for the healthchecks; work and log directories writable by the spark user.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /opt/spark/work /opt/spark/logs \
    && chown -R spark:spark /opt/spark/work /opt/spark/logs

# On the executors' classpath: the Iceberg Spark runtime and the AWS bundle (S3FileIO, AWS SDK v2).
ADD --chmod=644 https://repo1.maven.org/maven2/org/apache/iceberg/iceberg-spark-runtime-3.5_2.12/${ICEBERG_VERSION}/iceberg-spark-runtime-3.5_2.12-${ICEBERG_VERSION}.jar \
    /opt/spark/jars/
ADD --chmod=644 https://repo1.maven.org/maven2/org/apache/iceberg/iceberg-aws-bundle/${ICEBERG_VERSION}/iceberg-aws-bundle-${ICEBERG_VERSION}.jar \
    /opt/spark/jars/

USER spark
WORKDIR /opt/spark/work
