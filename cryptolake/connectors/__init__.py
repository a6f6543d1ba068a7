"""Exchange connectors: raw exchange payloads -> the normalized Trade contract. They know nothing of Kafka."""
