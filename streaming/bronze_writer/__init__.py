"""The long-running Spark job that appends the Kafka trades topic to ``bronze.trades`` exactly once."""
