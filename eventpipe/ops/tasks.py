"""Periodic ops tasks. ``ops.auto_rebalance`` runs the ``ops rebalance`` logic every 60 s when
``Settings.auto_rebalance`` is on (``EVENTPIPE_AUTO_REBALANCE=1`` in the worker's environment; off by
default: moving backlogs is an operator's decision until they opt in). It skips a run while an
earlier move is still going.
"""

from __future__ import annotations

import logging
from typing import Any

from eventpipe.tasks.api import task

log = logging.getLogger("eventpipe.ops")


@task("ops.auto_rebalance", queue="ops", max_retries=0, time_limit_ms=50_000, every="60s", schedule={"expires_s": 55})
def auto_rebalance(rt: Any) -> dict[str, Any]:
    """Move surplus backlog between RabbitMQ nodes (EVENTPIPE_AUTO_REBALANCE=1)."""
    if not rt.settings.auto_rebalance:
        return {"skipped": "EVENTPIPE_AUTO_REBALANCE is not set"}
    if rt.settings.embedded or len(rt.settings.amqp_urls) < 2:
        return {"skipped": "needs two or more RabbitMQ nodes"}
    from .rebalance import moves_running, rebalance

    running = moves_running(rt)
    if running:
        log.warning("auto_rebalance: %d move(s) still running (%s); skipping this run", len(running), running[0])
        return {"skipped": f"{len(running)} move(s) still running"}
    result = rebalance(rt)
    if result["plan"]:
        log.warning("auto_rebalance moved %d message(s) in %d move(s)", result["moved"], len(result["plan"]))
    return {"moved": result["moved"], "moves": len(result["plan"]), "errors": result["errors"]}

