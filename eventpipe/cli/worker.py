"""``eventpipe worker``: run a worker pool for some queues, or a pool declared in the config file."""

from __future__ import annotations

import sys

import click

from eventpipe.config import get_settings
from eventpipe.queues.nodes import node_name, normalize_node_name
from eventpipe.tasks.api import load_catalogue
from eventpipe.worker import PoolConfig, select_queues, supervise

from ._common import command


@command("worker")
@click.option("--queues", default="", help="comma-separated logical queues or globs (default: all)")
@click.option("--processes", type=click.IntRange(1, 256), default=None, help="worker processes")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="threads per process")
@click.option("--prefetch", type=click.IntRange(0, 65535), default=None, help="prefetch per consumer (default EVENTPIPE_PREFETCH; 0: adaptive, from 2 x threads up to about 0.25 s of acks, at most 1,000)")
@click.option("--pool", "pool_name", default=None, help="a pool declared in the config file ([pools.NAME])")
@click.option("--node", "nodes", multiple=True, help="consume only from this node HOST:PORT (repeatable)")
def worker(queues: str, processes: int | None, threads: int | None, prefetch: int | None, pool_name: str | None, nodes: tuple[str, ...]) -> None:
    """Run workers until SIGTERM (graceful) or a second SIGINT (immediate)."""
    settings = get_settings()
    if settings.embedded:
        raise click.UsageError(
            "workers need a broker: set EVENTPIPE_BROKER_URL (or EVENTPIPE_BROKER_URLS). "
            "In the embedded mode `eventpipe demo` and `eventpipe send` run the workers in-process."
        )
    spec = None
    if pool_name:
        spec = settings.pools.get(pool_name)
        if spec is None:
            known = ", ".join(sorted(settings.pools)) or "none"
            raise click.UsageError(f"no pool {pool_name!r} in the config file (declared: {known}); add [pools.{pool_name}]")
    patterns = [q.strip() for q in queues.split(",") if q.strip()] or (spec.queues if spec and spec.queues != ["*"] else [])
    try:
        select_queues(patterns, load_catalogue(settings.task_modules).queues())
    except ValueError as exc:  # a pattern matches no declared queue
        raise click.UsageError(str(exc)) from None
    configured = [node_name(u) for u in settings.amqp_urls]
    wanted = [normalize_node_name(n) for n in (list(nodes) or list(settings.consume_nodes))]
    unknown = [n for n in wanted if n not in configured]
    if unknown:
        raise click.UsageError(f"--node {', '.join(unknown)} is not a configured node; configured: {', '.join(configured)}")
    pool = PoolConfig(
        name=pool_name or "",
        queues=patterns,
        processes=processes or (spec.processes if spec else 1),
        threads=threads or (spec.threads if spec else 8),
        prefetch=prefetch if prefetch is not None else (spec.prefetch if spec and spec.prefetch else settings.prefetch),
        recycle_tasks=settings.worker_recycle_tasks,
        recycle_rss_mb=settings.worker_recycle_rss_mb,
        grace_s=settings.shutdown_grace_seconds,
        nodes=wanted,
    )
    click.echo(
        f"worker pool {pool.name or '(cli)'}: queues {', '.join(pool.queues) or 'all'}, "
        f"{pool.processes} x {pool.threads} threads, prefetch {pool.prefetch or f'adaptive from {2 * pool.threads}'}",
        err=True,
    )
    sys.exit(supervise(pool))


__all__ = ["worker"]
