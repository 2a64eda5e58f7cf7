"""web console: users and the audit trail

Revision ID: 0009_web
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_web"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "web_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_web_audit_at", "web_audit", ["at"])
    op.create_index("ix_web_audit_target", "web_audit", ["target"])


def downgrade() -> None:
    op.drop_index("ix_web_audit_target", table_name="web_audit")
    op.drop_index("ix_web_audit_at", table_name="web_audit")
    op.drop_table("web_audit")
    op.drop_table("web_users")
