-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- iceberg: the Iceberg REST catalog's JdbcCatalog tables. dagster: Dagster run, event-log and schedule storage.
CREATE DATABASE iceberg;
CREATE DATABASE dagster;
