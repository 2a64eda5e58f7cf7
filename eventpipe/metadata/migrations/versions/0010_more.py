"""enrichment (affected users, tag values), platform stats, queue snapshots, KV range jobs

Revision ID: 0010_more
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_more"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issue_users",
        sa.Column("issue_id", sa.BigInteger(), nullable=False),
        sa.Column("user_hash", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "user_hash"),
    )
    op.create_index("ix_issue_users_project_id", "issue_users", ["project_id"])
    op.create_table(
        "issue_tag_values",
        sa.Column("issue_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("times_seen", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "key", "value"),
    )
    op.create_index("ix_issue_tag_values_project_id", "issue_tag_values", ["project_id"])
    op.create_table(
        "event_indexed",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("issue_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "event_id", "kind"),
    )
    op.create_index("ix_event_indexed_issue_id", "event_indexed", ["issue_id"])
    op.create_table(
        "platform_stats",
        sa.Column("day", sa.DateTime(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "project_id", "platform"),
    )
    op.create_table(
        "queue_snapshots",
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("ready", sa.BigInteger(), nullable=True),
        sa.Column("unacked", sa.BigInteger(), nullable=True),
        sa.Column("consumers", sa.Integer(), nullable=True),
        sa.Column("lag_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("taken_at", "queue", "node"),
    )
    op.create_table(
        "kv_range_jobs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=True),
        sa.Column("scanned", sa.BigInteger(), nullable=False),
        sa.Column("copied", sa.BigInteger(), nullable=False),
        sa.Column("missing", sa.BigInteger(), nullable=False),
        sa.Column("corrupt", sa.BigInteger(), nullable=False),
        sa.Column("repaired", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )


def downgrade() -> None:
    op.drop_table("kv_range_jobs")
    op.drop_table("queue_snapshots")
    op.drop_table("platform_stats")
    op.drop_index("ix_event_indexed_issue_id", table_name="event_indexed")
    op.drop_table("event_indexed")
    op.drop_index("ix_issue_tag_values_project_id", table_name="issue_tag_values")
    op.drop_table("issue_tag_values")
    op.drop_index("ix_issue_users_project_id", table_name="issue_users")
    op.drop_table("issue_users")
