"""The Binance -> Kafka trade producer (WebSocket ingest, gap repair over REST, dead-letter routing)."""
