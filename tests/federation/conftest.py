"""Three test-owned RabbitMQ nodes for the federation and shovel tests (one set per session).

The nodes are independent brokers on loopback with their own ports (never the machine's node on
5672), killed at the end of the session even when tests fail.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``tests.fixtures`` is importable from the repository root; make sure the root is on sys.path
# whichever way pytest was started (``pytest`` does not add the working directory, ``python -m
# pytest`` does).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.fixtures.rabbitmq_nodes import make_rabbit_nodes_fixture  # noqa: E402

rabbit_nodes = make_rabbit_nodes_fixture(3, name="rabbit_nodes")
