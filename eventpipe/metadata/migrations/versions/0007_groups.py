"""groups and cleanup: fingerprint rule versions, issue redirects, snoozes, auto-resolve age,
activity actors, scheduled deletions, regroup runs, KV orphan candidates

Revision ID: 0007_groups
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_groups"
down_revision = "0001"
branch_labels = None
depends_on = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("resolve_age", sa.Integer(), nullable=True))
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("snooze_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("snooze_until_seen", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("activities") as batch:
        batch.add_column(sa.Column("actor", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("data", sa.JSON(), nullable=True))
    op.create_table(
        "fingerprint_rule_versions",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "version"),
    )
    op.create_table(
        "issue_redirects",
        sa.Column("issue_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id"),
    )
    op.create_index(op.f("ix_issue_redirects_target_id"), "issue_redirects", ["target_id"], unique=False)
    op.create_table(
        "scheduled_deletions",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_enqueued_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "object_id", name="uq_scheduled_deletion"),
    )
    op.create_index(op.f("ix_scheduled_deletions_done_at"), "scheduled_deletions", ["done_at"], unique=False)
    op.create_table(
        "regroup_runs",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("events_read", sa.BigInteger(), nullable=False),
        sa.Column("events_moved", sa.BigInteger(), nullable=False),
        sa.Column("bodies_missing", sa.BigInteger(), nullable=False),
        sa.Column("issues_created", sa.Integer(), nullable=False),
        sa.Column("merged_away", sa.Integer(), nullable=False),
        sa.Column("passes", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.BigInteger(), nullable=False),
        sa.Column("touched", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_regroup_runs_project_id"), "regroup_runs", ["project_id"], unique=False)
    op.create_table(
        "kv_orphan_candidates",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("kv_orphan_candidates")
    op.drop_index(op.f("ix_regroup_runs_project_id"), table_name="regroup_runs")
    op.drop_table("regroup_runs")
    op.drop_index(op.f("ix_scheduled_deletions_done_at"), table_name="scheduled_deletions")
    op.drop_table("scheduled_deletions")
    op.drop_index(op.f("ix_issue_redirects_target_id"), table_name="issue_redirects")
    op.drop_table("issue_redirects")
    op.drop_table("fingerprint_rule_versions")
    with op.batch_alter_table("activities") as batch:
        batch.drop_column("data")
        batch.drop_column("actor")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("snooze_until_seen")
        batch.drop_column("snooze_until")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("resolve_age")
