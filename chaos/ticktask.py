"""The periodic task R8 fires: one second slots, an idempotent and countable effect.

Loaded by the R8 schedulers and worker through ``EVENTPIPE_TASK_MODULES=chaos.ticktask``. Each
run records ``(slot, message id)`` in ``chaos_ticks`` (``ON CONFLICT DO NOTHING``: a redelivered
message has no second effect), so a slot with two message ids is a double fire and a slot with
none is a missed one. The slot comes from the message options the scheduler sets
(``schedule_slot``), read through dramatiq's ``CurrentMessage`` middleware.
"""

from __future__ import annotations

import sqlalchemy as sa
from dramatiq.middleware import CurrentMessage

from eventpipe import TaskContext, task

TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS chaos_ticks (slot timestamptz NOT NULL, message_id text NOT NULL, "
    "scheduler_id text, ran_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (slot, message_id))"
)
# catch_up="all": every slot missed while no scheduler was alive fires once one is back, so the
# expected number of missed slots is 0 (up to max_catch_up of them, far more than a run's gaps).
CATCH_UP = {"catch_up": "all", "max_catch_up": 600}


@task("chaos.tick", queue="chaos", every="1s", schedule=CATCH_UP, max_retries=20)
def tick(ctx: TaskContext) -> None:
    """Record this slot's firing (chaos suite, R8)."""
    message = CurrentMessage.get_current_message()
    options = message.options if message is not None else {}
    slot = options.get("schedule_slot")
    if not slot:
        return  # not fired by a scheduler (e.g. `tasks run`): nothing to count
    with ctx.db.session() as s:
        s.execute(
            sa.text("INSERT INTO chaos_ticks (slot, message_id, scheduler_id) VALUES (:slot, :mid, :sid) "
                    "ON CONFLICT DO NOTHING"),
            {"slot": slot, "mid": message.message_id, "sid": options.get("scheduler_id")},  # type: ignore[union-attr]
        )
