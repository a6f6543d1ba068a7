"""Local peers that speak the protocols of the outside services, for the embedded profile, tests and benchmarks.

* ``simulators.binance``: a Binance WebSocket + REST server (replayed recordings or a seeded synthetic market,
  with fault injection): ``python -m simulators.binance --help``.
* ``simulators.batch_apis``: CoinGecko market charts and Alternative.me Fear & Greed:
  ``python -m simulators.batch_apis --help``.

They stand in for the exchange and the APIs, so they share no code with CryptoLake's own packages (a test that
parses their output with our parser must not be parsing with the code that wrote it).
"""
