"""operator tooling: drained nodes, closed queues, kill switches

Revision ID: 0004_ops
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_ops"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_drained_nodes",
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("drained_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("node"),
    )
    op.create_table(
        "ops_closed_queues",
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("queue"),
    )
    op.create_table(
        "ops_killswitches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("where", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("ops_killswitches")
    op.drop_table("ops_closed_queues")
    op.drop_table("ops_drained_nodes")
