"""``eventpipe federation setup|status|teardown``: the federation mesh from the operator's seat.

Nodes come from settings (``EVENTPIPE_BROKER_URLS``, optionally ``EVENTPIPE_MANAGEMENT_URLS``).
Every failure is a :class:`click.ClickException` whose message names the node and the next step,
and ``status`` exits non-zero while any link is not running, so it can gate deploys and alerts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from eventpipe.config import ConfigError, load_settings

from . import federation as fed
from .management import ManagementError, management_urls_for
from .topology import Topology


def _nodes() -> tuple[list[str], list[str], Topology]:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    amqp = settings.amqp_urls
    if not amqp:
        raise click.ClickException(
            "no broker nodes configured: set EVENTPIPE_BROKER_URLS=amqp://user:pass@host1:5672,amqp://...@host2:5672 "
            "(federation needs at least two nodes)"
        )
    try:
        mgmt = management_urls_for(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return amqp, mgmt, Topology(settings.queue_prefix)


def catalogue_queues(fallback: Sequence[str] = ()) -> list[str]:
    """Logical queues of every task in the catalogue; ``fallback`` when the catalogue cannot load."""
    try:
        from eventpipe.tasks.api import load_catalogue

        queues = load_catalogue().queues()
    except Exception as exc:  # noqa: BLE001 - a catalogue module in progress must not block ops
        if fallback:
            return sorted(set(fallback))
        raise click.ClickException(
            f"cannot load the task catalogue ({type(exc).__name__}: {exc}); "
            "name the queues with --queue NAME (repeatable)"
        ) from None
    return sorted(set(queues) | set(fallback))


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@click.group("federation")
def federation() -> None:
    """Federate the task queues of several independent RabbitMQ nodes (management API)."""


@federation.command("setup")
@click.option("--queue", "queues", multiple=True, metavar="NAME",
              help="logical queue to federate (repeatable); default: every queue of the task catalogue")
@click.option("--prefetch", type=click.IntRange(1, 65535), default=fed.DEFAULT_LINK_PREFETCH, show_default=True,
              help="federation link prefetch; lower means fewer messages bounce between idle nodes")
@click.option("--wait", "wait_s", type=click.FloatRange(0), default=fed.DEFAULT_LINK_WAIT_S, show_default=True,
              help="seconds to wait for every federation link to run (0: do not wait)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def setup_cmd(queues: tuple[str, ...], prefetch: int, wait_s: float, as_json: bool) -> None:
    """Declare every task queue on every node, create or extend the federation mesh, and wait
    until its links run; exits 1 with each broken link's reason and fix when they do not.

    Idempotent: a second run changes nothing and says "unchanged".
    """
    amqp, mgmt, topology = _nodes()
    logical = sorted(set(queues)) if queues else catalogue_queues()
    try:
        result = fed.setup(amqp, mgmt, topology, logical, prefetch=prefetch)
    except (ManagementError, fed.FederationError, ValueError) as exc:
        raise _fail(exc) from None
    links: fed.StatusResult | None = None
    if wait_s > 0 and len(result.nodes) > 1:
        if not as_json:
            click.echo(f"waiting up to {wait_s:.0f}s for the federation links to run...", err=True)
        try:
            links = fed.wait_links(amqp, mgmt, topology, timeout_s=wait_s)
        except (ManagementError, fed.FederationError) as exc:
            raise _fail(exc) from None
    running = sum(len(n.links) for n in links.nodes) if links else None
    if as_json:
        _emit_json({**result.to_dict(), "links_running": running})
        return
    console = Console()
    table = Table(title=f"federation setup ({topology.prefix}*, link prefetch {prefetch})")
    for col in ("node", "queues created", "upstreams", "policy", "changed"):
        table.add_column(col)
    for node in result.nodes:
        ups = ", ".join(
            f"{node.count('upstream', a)} {a}" for a in ("created", "updated", "unchanged", "removed")
            if node.count("upstream", a)
        ) or "-"
        pol = next((c.action for c in node.changes if c.kind == "policy"), "-")
        table.add_row(node.node, str(node.count("queue", "created")), ups, pol, "yes" if node.changed else "no")
    console.print(table)
    console.print(f"federation: [bold]{result.summary}[/bold] ({len(result.federated_queues)} federated queues"
                  + (f", {running} links running)" if running is not None else ")"))


@federation.command("status")
@click.option("--json", "as_json", is_flag=True, help="print every link as JSON")
@click.option("--all", "show_all", is_flag=True, help="list running links too, not only broken ones")
def status_cmd(as_json: bool, show_all: bool) -> None:
    """Every federation link on every node; exits 1 while any link is not running."""
    amqp, mgmt, topology = _nodes()
    try:
        result = fed.status(amqp, mgmt, topology)
    except (ManagementError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        _emit_json(result.to_dict())
    else:
        console = Console()
        summary = Table(title=f"federation links ({topology.prefix}*)")
        for col in ("node", "running", "not running", "note"):
            summary.add_column(col)
        for node in result.nodes:
            bad = node.not_running()
            note = "unreachable" if not node.reachable else ("see below" if node.error else "")
            if node.reachable and not node.error and not node.links:
                note = "no federated queues yet"
            summary.add_row(node.node, str(len(node.links) - len(bad)), str(len(bad)), note)
        console.print(summary)
        for node in result.nodes:  # full messages unwrapped: they say what to do next
            if node.error:
                console.print(f"{node.node}: {node.error}", soft_wrap=True, markup=False, highlight=False)
        # one row per (node, upstream, status, error) with a queue count: a dead peer breaks
        # the links of every queue at once, and fifty identical rows would hide that
        groups: dict[tuple[str, str, str, str], list[str]] = {}
        for n in result.nodes:
            for link in n.links:
                if show_all or not link.running:
                    groups.setdefault((n.node, link.upstream, link.status, link.error or ""), []).append(link.queue)
        if groups:
            detail = Table(title="links" if show_all else "links not running")
            for col in ("node", "upstream", "status", "queues", "error"):
                detail.add_column(col, overflow="fold")
            for (node_name, upstream, state, error), qs in groups.items():
                shown = ", ".join(qs[:3]) + (f" +{len(qs) - 3}" if len(qs) > 3 else "")
                detail.add_row(node_name, upstream, state, shown, error)
            console.print(detail)
        if not result.all_running:
            console.print("[bold red]not all links are running[/bold red]: a link to a peer that is down "
                          "reconnects on its own once the peer is back", soft_wrap=True)
    if not result.all_running:
        sys.exit(1)


@federation.command("teardown")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def teardown_cmd(as_json: bool) -> None:
    """Remove the upstreams, upstream set and policy that setup created (queues and messages stay)."""
    amqp, mgmt, topology = _nodes()
    try:
        result = fed.teardown(amqp, mgmt, topology)
    except (ManagementError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        _emit_json(result.to_dict())
        return
    for node in result.nodes:
        removed = [f"{c.kind} {c.name}" for c in node.changes]
        click.echo(f"{node.node}: " + (f"removed {', '.join(removed)}" if removed else "nothing to remove"))


__all__ = ["federation", "catalogue_queues"]
