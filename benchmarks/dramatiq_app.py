"""Plain Dramatiq with its own RabbitmqBroker and default settings, for the baseline.

    BENCH_QUEUE=q BENCH_AMQP=amqp://... dramatiq benchmarks.dramatiq_app --processes 2 --threads 8
"""

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

broker = RabbitmqBroker(url=os.environ.get("BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=os.environ.get("BENCH_QUEUE", "bench-dramatiq"))
def noop(**kwargs):
    pass
