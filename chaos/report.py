"""The chaos table: printed, and written to docs/reliability.md with the date and commit."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .scenarios import Row

COLUMNS = ("scenario", "fault", "requests", "accepted (200)", "stored", "lost", "dup rows", "dup counts",
           "recover s", "503+Retry-After", "bad client errors", "slowest answer s")


def cells(r: Row) -> list[str]:
    return [r.scenario, r.fault, str(r.requests), str(r.accepted), str(r.stored), str(r.lost), str(r.dup_rows),
            "n/a" if r.dup_counts is None else str(r.dup_counts),
            "-" if r.recover_s is None else f"{r.recover_s:.1f}", str(r.backpressure), str(r.bad),
            f"{r.slowest_s:.1f}"]


def print_table(rows: list[Row], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="eventpipe chaos run")
    for c in COLUMNS:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*cells(r))
    console.print(t)
    for r in rows:
        for note in r.notes:
            console.print(f"{r.scenario}: {note}", soft_wrap=True, markup=False, highlight=False)


def commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") or "unknown"
    except OSError:
        return "unknown"


def _previous(text: str, skip: set[str]) -> tuple[str, dict[str, str], dict[str, list[str]]]:
    """From an earlier report: its "Last run" line, table rows and notes by scenario (not in ``skip``)."""
    stamp = ""
    table: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("Last run: "):
            stamp = line[len("Last run: "):].split(". Regenerate")[0]
        m = re.match(r"\| (R\d+) \|", line)
        if m and m.group(1) not in skip:
            table[m.group(1)] = line
        m = re.match(r"- (R\d+): ", line)
        if m and m.group(1) not in skip:
            notes.setdefault(m.group(1), []).append(line)
    return stamp, table, notes


def markdown(rows: list[Row], *, repo: Path, settings: str, previous: str = "") -> str:
    """The report. Rows of scenarios this run did not take are kept from ``previous`` (the file
    as it was), marked with the run they come from."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    stamp, kept, kept_notes = _previous(previous, {r.scenario for r in rows})
    lines = [
        "# Reliability: the chaos suite's figures",
        "",
        f"Last run: {now}, commit `{commit(repo)}`, {settings}. Regenerate with `make chaos`",
        "(a few minutes; it starts its own Postgres, Redis and three RabbitMQ nodes on loopback and runs",
        "`eventpipe ingest serve`, `eventpipe worker` and, for R8, three `eventpipe scheduler` as subprocesses;",
        "R7 mounts a small tmpfs as the home of an embedded `eventpipe ingest serve`, so it needs root).",
        "",
        "Columns: **accepted** = HTTP 200 answers; **stored** = accepted events with their row in",
        "`events`; **lost** = accepted but never stored (after a settle time of up to 120 s);",
        "**dup rows** = extra `events` rows for one event; **dup counts** = counter increments",
        "(`times_seen` plus pending buffered deltas) beyond one per stored event; **recover s** =",
        "seconds from the end of the fault until an event accepted after it was stored (the",
        "pipeline flows end to end again); **503+Retry-After** = correct back-pressure answers;",
        "**bad client errors** = hangs (15 s client timeout), refused connections, 5xx without",
        "`Retry-After`, and for R9 any fuzzed request not answered 4xx; **slowest answer s** = the",
        "longest a client waited for any answer (an ingest deadline shows here; requests = all",
        "valid-traffic requests sent at the fixed rate, so requests minus accepted = refused or failed).",
        "R8 has no HTTP traffic: there requests = one-second slots due, accepted = slots recorded fired,",
        "stored = slots whose task ran, lost = missed slots, dup rows = double fires (its notes say more).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    table = {r.scenario: "| " + " | ".join(cells(r)) + " |" for r in rows}
    table.update(kept)
    lines += [table[k] for k in sorted(table, key=lambda k: int(k[1:]))]
    lines.append("")
    if kept:
        older = ", ".join(sorted(kept, key=lambda k: int(k[1:])))
        lines += [f"Rows {older} are from an earlier run ({stamp}); the others from this one.", ""]
    by: dict[str, list[str]] = {r.scenario: [f"- {r.scenario}: {note}" for note in r.notes] for r in rows}
    by.update(kept_notes)
    notes = [n for k in sorted(by, key=lambda k: int(k[1:])) for n in by[k]]
    if notes:
        lines += ["Notes from the run:", "", *notes, ""]
    return "\n".join(lines)
