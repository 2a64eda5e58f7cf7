"""scheduler state: per-job watermark and pause, per-slot claims and history

Revision ID: 0002_schedules
Revises: 0001
Create Date: 2026-11-22 06:45:00

Branches from 0001 like every subsystem's revision; ``upgrade heads`` applies them all.
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_schedules"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_jobs",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("last_slot", sa.DateTime(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_at", sa.DateTime(), nullable=True),
        sa.Column("paused_by", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job"),
    )
    op.create_table(
        "schedule_slots",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.DateTime(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fired_at", sa.DateTime(), nullable=True),
        sa.Column("fired_by", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("job", "kind", "slot"),
    )
    with op.batch_alter_table("schedule_slots", schema=None) as batch_op:
        batch_op.create_index("ix_schedule_slots_fired_at", ["fired_at"], unique=False)
        batch_op.create_index("ix_schedule_slots_job_fired_at", ["job", "fired_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedule_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_schedule_slots_job_fired_at")
        batch_op.drop_index("ix_schedule_slots_fired_at")
    op.drop_table("schedule_slots")
    op.drop_table("schedule_jobs")
