"""CryptoLake platform core: settings, the trade contract, table registry, lakehouse and broker access.

Every other package (``streaming``, ``serving``, ``cryptolake_dagster``) imports these facts from here, so each
is defined exactly once.
"""
