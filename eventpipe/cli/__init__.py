"""The ``eventpipe`` command: one click group, with every subcommand listed below.

Each group lives in its own module of this package and is a thin layer over plain functions in
the domain packages; the shared helpers (runtime, JSON, tables, exit codes, error reporting) are
in :mod:`eventpipe.cli._common`.
"""

from __future__ import annotations

import logging

import click

from . import cleanup, db, dlq, events, federation, ingest, issues, killswitch, kv, monitors, ops, projects, rules, schedules, stored, tasks, users, web, worker
from ._common import EventpipeGroup

@click.group(cls=EventpipeGroup)
@click.option("-v", "--verbose", is_flag=True, help="log at INFO level")
def main(verbose: bool) -> None:
    """eventpipe: offline task processing for event pipelines."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


ops.ops.add_command(killswitch.killswitch)
ops.ops.add_command(dlq.dlq)
cleanup.attach(projects.projects)

for command in (
    tasks.tasks,
    db.db,
    projects.projects,
    events.demo,
    events.send,
    events.stats,
    issues.issues,
    cleanup.cleanup,
    stored.events,
    kv.kv,
    schedules.schedules,
    schedules.scheduler,
    federation.federation,
    worker.worker,
    ingest.ingest,
    ops.ops,
    rules.rules,
    monitors.monitors,
    web.web,
    users.users,
):
    main.add_command(command)

__all__ = ["main"]
