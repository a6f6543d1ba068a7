"""The top layer: the ``cryptolake`` command and the platform supervisor (``cryptolake run``).

It sits above every other package: it may import the core (``cryptolake``), the streaming services, the Dagster
code location and the serving apps; none of them imports it.
"""
