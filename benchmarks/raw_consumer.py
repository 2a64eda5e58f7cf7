"""Raw pika consumer: basic_consume with a prefetch, ack each message; exits on SIGTERM.

    python -m benchmarks.raw_consumer URL QUEUE PREFETCH
"""

import signal
import sys

import pika


def main() -> None:
    url, queue, prefetch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"})
    ch.basic_qos(prefetch_count=prefetch)

    def on_message(ch, method, _props, _body):
        ch.basic_ack(method.delivery_tag)

    def on_term(*_):
        ch.stop_consuming()

    signal.signal(signal.SIGTERM, on_term)
    ch.basic_consume(queue, on_message)
    try:
        ch.start_consuming()
    finally:
        try:
            conn.close()
        except Exception:
            pass


if __name__ == "__main__":
    main()
