"""Write-behind sinks: where the worker applies batches of writes.

``postgres.PostgresSink`` (psycopg 3, the ``postgres`` extra),
``sqlalchemy.SQLAlchemySink`` (the ``sqlalchemy`` extra), ``sqlite.SQLiteSink``
(stdlib) and ``callable.CallableSink``; ``base.Sink`` is the protocol. Import
the one you use from its module: each imports only its own driver.
"""
