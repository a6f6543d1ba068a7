"""Access to the Iceberg lakehouse: the Spark session builder, the pyiceberg catalog and the bootstrap."""
