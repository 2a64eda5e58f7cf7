"""group hashes: every fingerprint hash an issue owns; the hash each event was grouped by

Revision ID: 0005_group_hashes
Revises: 0001

Existing issues get their primary hash as their first group hash, so the save path (which maps
hashes to issues through this table) keeps grouping old and new events together.
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_group_hashes"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_hashes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "hash", name="uq_group_hash"),
    )
    op.create_index(op.f("ix_group_hashes_issue_id"), "group_hashes", ["issue_id"], unique=False)
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=False, server_default=""))
    op.execute(
        "INSERT INTO group_hashes (project_id, hash, issue_id) SELECT project_id, fingerprint_hash, id FROM issues"
    )
    op.execute(
        "UPDATE events SET fingerprint = (SELECT fingerprint_hash FROM issues WHERE issues.id = events.issue_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("fingerprint")
    op.drop_index(op.f("ix_group_hashes_issue_id"), table_name="group_hashes")
    op.drop_table("group_hashes")
