"""``make chaos`` / ``python -m chaos``: inject one fault per scenario into a real eventpipe
deployment on loopback, under HTTP ingest traffic, and count what happened to every event.

Why a suite of its own (not part of ``make test``): each scenario runs real servers (Postgres,
Redis for bodies, RabbitMQ nodes) and real eventpipe processes (``eventpipe ingest serve``, ``eventpipe worker``)
for tens of seconds, and reports figures rather than pass/fail. It drives the system only
through what operators use (the CLI, the HTTP ingest API and SQL counts of the ``events``
table), so it keeps working while the internals change.

Per scenario: events accepted (HTTP 200), stored (rows in ``events``), lost (accepted, never
stored), duplicated effects (duplicate event rows and counter increments beyond one per event),
time to recover, and the errors clients saw (503 with ``Retry-After`` is correct back-pressure;
a hang, a refused connection or a 5xx without ``Retry-After`` is not).
"""
