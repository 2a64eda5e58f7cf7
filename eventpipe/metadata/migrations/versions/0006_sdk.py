"""projects.allowed_origins: browser origins allowed to send events (CORS)

Revision ID: 0006_sdk
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_sdk"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("allowed_origins", sa.Text(), nullable=False, server_default="*"))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("allowed_origins")
