"""Throwaway servers and the key-value conformance suite, for tests, benchmarks and plugin authors.

Why a package (not only ``tests/``): a third-party key-value backend runs the same conformance
suite as the built-ins, and ``benchmarks/`` starts the same servers the tests start, without
importing the project's test folder. Everything here binds to 127.0.0.1 on free ports, keeps its
data in a folder the caller owns and is killed on ``stop()``/``close()``.

* :mod:`eventpipe.testing.ports` — ``free_port`` and port waits;
* :mod:`eventpipe.testing.servers` — SeaweedFS (S3) and a six-node Redis Cluster;
* :mod:`eventpipe.testing.rabbitmq` — independent RabbitMQ nodes a test may kill and restart
  (:mod:`eventpipe.testing.erlang`: the scripts, a private epmd, the watchdog);
* :mod:`eventpipe.testing.postgres` — a PostgreSQL server a test may stop and start;
* :mod:`eventpipe.testing.conformance` — ``KeyValueStoreConformance`` (needs pytest).

This package sits at the top of the import layers: nothing else in ``eventpipe`` imports it.
"""
