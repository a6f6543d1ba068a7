# syntax=docker/dockerfile:1.7
# Iceberg REST catalog of the cluster profile: Apache Iceberg's REST catalog server (the rest-fixture image, which
# already carries S3FileIO and the AWS SDK) with a JdbcCatalog in PostgreSQL. The image has no PostgreSQL JDBC
# driver, so it is added here. Build context: infra/docker (nothing is copied from it).
ARG ICEBERG_REST_IMAGE=apache/iceberg-rest-fixture:1.10.1
FROM ${ICEBERG_REST_IMAGE}

ARG POSTGRES_JDBC_VERSION=42.7.8

USER root
ADD --chmod=644 https://repo1.maven.org/maven2/org/postgresql/postgresql/${POSTGRES_JDBC_VERSION}/postgresql-${POSTGRES_JDBC_VERSION}.jar \
    /usr/lib/iceberg-rest/
USER iceberg:iceberg
WORKDIR /usr/lib/iceberg-rest

# The server with the driver on the classpath (`java -jar` would ignore it). Configuration: CATALOG_* variables in
# docker-compose.yml.
ENTRYPOINT ["java", "-cp", "/usr/lib/iceberg-rest/*", "org.apache.iceberg.rest.RESTCatalogServer"]
CMD []
