"""``eventpipe federation setup|status|teardown``: the federation mesh from the operator's seat.

Nodes come from settings (``EVENTPIPE_BROKER_URLS``, optionally ``EVENTPIPE_MANAGEMENT_URLS``).
``status`` exits 1 while any link is not running, so it can gate deploys and alerts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from eventpipe.config import ConfigError, get_settings
from eventpipe.queues import federation as fed
from eventpipe.queues.management import management_urls_for
from eventpipe.queues.topology import Topology
from eventpipe.queues import federation_links as links_mod

from ._common import CommandFailed, ExitCode, emit_json, group, json_option, out, table


def _nodes() -> tuple[list[str], list[str], Topology]:
    settings = get_settings()
    amqp = settings.amqp_urls
    if not amqp:
        raise ConfigError(
            "no broker nodes configured: set EVENTPIPE_BROKER_URLS=amqp://user:pass@host1:5672,amqp://...@host2:5672 "
            "(federation needs at least two nodes)"
        )
    try:
        mgmt = management_urls_for(settings)
    except ValueError as exc:  # the management URLs do not match the broker URLs
        raise ConfigError(str(exc)) from None
    return amqp, mgmt, Topology(settings.queue_prefix)


def catalogue_queues(fallback: Sequence[str] = ()) -> list[str]:
    """Logical queues of every task in the catalogue; ``fallback`` when the catalogue cannot load."""
    try:
        from eventpipe.tasks.api import load_catalogue

        queues = load_catalogue(get_settings().task_modules).queues()
    except Exception as exc:  # noqa: BLE001 - a catalogue module in progress must not block ops
        if fallback:
            return sorted(set(fallback))
        raise CommandFailed(
            f"cannot load the task catalogue ({type(exc).__name__}: {exc}); "
            "name the queues with --queue NAME (repeatable)"
        ) from None
    return sorted(set(queues) | set(fallback))


@group("federation")
def federation() -> None:
    """Federate the task queues of several independent RabbitMQ nodes (management API)."""


@federation.command("setup")
@click.option("--queue", "queues", multiple=True, metavar="NAME",
              help="logical queue to federate (repeatable); default: every queue of the task catalogue")
@click.option("--prefetch", type=click.IntRange(1, 65535), default=fed.DEFAULT_LINK_PREFETCH, show_default=True,
              help="federation link prefetch; lower means fewer messages bounce between idle nodes")
@click.option("--wait", "wait_s", type=click.FloatRange(0), default=links_mod.DEFAULT_LINK_WAIT_S, show_default=True,
              help="seconds to wait for every federation link to run (0: do not wait)")
@json_option
def setup(queues: tuple[str, ...], prefetch: int, wait_s: float, as_json: bool) -> None:
    """Declare every task queue on every node, create or extend the federation mesh, and wait
    until its links run; exits 1 with each broken link's reason and fix when they do not.

    Idempotent: a second run changes nothing and says "unchanged".
    """
    amqp, mgmt, topology = _nodes()
    logical = sorted(set(queues)) if queues else catalogue_queues()
    result = fed.setup(amqp, mgmt, topology, logical, prefetch=prefetch)
    links: fed.StatusResult | None = None
    if wait_s > 0 and len(result.nodes) > 1:
        if not as_json:
            click.echo(f"waiting up to {wait_s:.0f}s for the federation links to run...", err=True)
        links = links_mod.wait_links(amqp, mgmt, topology, timeout_s=wait_s)
    running = sum(len(n.links) for n in links.nodes) if links else None
    if as_json:
        emit_json({**result.to_dict(), "links_running": running})
        return
    rows = []
    for node in result.nodes:
        ups = ", ".join(
            f"{node.count('upstream', a)} {a}" for a in ("created", "updated", "unchanged", "removed")
            if node.count("upstream", a)
        ) or "-"
        pol = next((c.action for c in node.changes if c.kind == "policy"), "-")
        rows.append([node.node, node.count("queue", "created"), ups, pol, "yes" if node.changed else "no"])
    out.print(table(["node", "queues created", "upstreams", "policy", "changed"], rows,
                    title=f"federation setup ({topology.prefix}*, link prefetch {prefetch})"))
    out.print(f"federation: [bold]{result.summary}[/bold] ({len(result.federated_queues)} federated queues"
              + (f", {running} links running)" if running is not None else ")"))


@federation.command("status")
@json_option
@click.option("--all", "show_all", is_flag=True, help="list running links too, not only broken ones")
def status(as_json: bool, show_all: bool) -> None:
    """Every federation link on every node; exits 1 while any link is not running."""
    amqp, mgmt, topology = _nodes()
    result = fed.status(amqp, mgmt, topology)
    if as_json:
        emit_json(result.to_dict())
    else:
        summary = []
        for node in result.nodes:
            bad = node.not_running()
            note = "unreachable" if not node.reachable else ("see below" if node.error else "")
            if node.reachable and not node.error and not node.links:
                note = "no federated queues yet"
            summary.append([node.node, len(node.links) - len(bad), len(bad), note])
        out.print(table(["node", "running", "not running", "note"], summary,
                        title=f"federation links ({topology.prefix}*)"))
        for node in result.nodes:  # full messages unwrapped: they say what to do next
            if node.error:
                out.print(f"{node.node}: {node.error}", soft_wrap=True, markup=False, highlight=False)
        # one row per (node, upstream, status, error) with a queue count: a dead peer breaks
        # the links of every queue at once, and fifty identical rows would hide that
        groups: dict[tuple[str, str, str, str], list[str]] = {}
        for n in result.nodes:
            for link in n.links:
                if show_all or not link.running:
                    groups.setdefault((n.node, link.upstream, link.status, link.error or ""), []).append(link.queue)
        if groups:
            detail = table(["node", "upstream", "status", "queues", "error"], [
                [node_name, upstream, state, ", ".join(qs[:3]) + (f" +{len(qs) - 3}" if len(qs) > 3 else ""), error]
                for (node_name, upstream, state, error), qs in groups.items()
            ], title="links" if show_all else "links not running")
            for column in detail.columns:
                column.overflow = "fold"
            out.print(detail)
        if not result.all_running:
            out.print("[bold red]not all links are running[/bold red]: a link to a peer that is down "
                      "reconnects on its own once the peer is back", soft_wrap=True)
    if not result.all_running:
        sys.exit(ExitCode.FAILED)


@federation.command("teardown")
@json_option
def teardown(as_json: bool) -> None:
    """Remove the upstreams, upstream set and policy that setup created (queues and messages stay)."""
    amqp, mgmt, topology = _nodes()
    result = fed.teardown(amqp, mgmt, topology)
    if as_json:
        emit_json(result.to_dict())
        return
    for node in result.nodes:
        removed = [f"{c.kind} {c.name}" for c in node.changes]
        click.echo(f"{node.node}: " + (f"removed {', '.join(removed)}" if removed else "nothing to remove"))


__all__ = ["catalogue_queues", "federation"]
