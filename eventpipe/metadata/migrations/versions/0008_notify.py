"""notifications: alert rules, throttle state, digests, sends; cron monitors and check-ins

Revision ID: 0008_notify
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_notify"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_rule_fires',
    sa.Column('rule_id', sa.BigInteger(), nullable=False),
    sa.Column('issue_id', sa.BigInteger(), nullable=False),
    sa.Column('last_fired_at', sa.DateTime(), nullable=False),
    sa.Column('fired', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('rule_id', 'issue_id')
    )
    op.create_table('cron_checkins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('monitor_id', sa.BigInteger(), nullable=False),
    sa.Column('checkin_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('monitor_id', 'checkin_id', name='uq_cron_checkin')
    )
    op.create_index('ix_cron_checkins_monitor_ts', 'cron_checkins', ['monitor_id', 'received_at'], unique=False)
    op.create_table('digest_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.BigInteger(), nullable=False),
    sa.Column('issue_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('digest_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule_id', 'issue_id', 'kind', 'ref', name='uq_digest_record')
    )
    op.create_index('ix_digest_records_pending', 'digest_records', ['project_id', 'digest_id'], unique=False)
    op.create_table('digest_timelines',
    sa.Column('project_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('last_processed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('project_id')
    )
    op.create_index(op.f('ix_digest_timelines_due_at'), 'digest_timelines', ['due_at'], unique=False)
    op.create_table('digests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('issues', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_digests_project_id'), 'digests', ['project_id'], unique=False)
    op.create_table('notification_sends',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=1000), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index(op.f('ix_notification_sends_project_id'), 'notification_sends', ['project_id'], unique=False)
    op.create_index('ix_notification_sends_status', 'notification_sends', ['status', 'created_at'], unique=False)
    op.create_table('alert_rules',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('when', sa.String(length=32), nullable=False),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('minutes', sa.Integer(), nullable=True),
    sa.Column('level', sa.String(length=16), nullable=True),
    sa.Column('emails', sa.JSON(), nullable=False),
    sa.Column('webhooks', sa.JSON(), nullable=False),
    sa.Column('throttle_minutes', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_alert_rules_project_id'), 'alert_rules', ['project_id'], unique=False)
    op.create_table('cron_monitors',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('schedule', sa.String(length=100), nullable=False),
    sa.Column('margin_minutes', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('checked_until', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'slug', name='uq_cron_monitor_slug')
    )


def downgrade() -> None:
    op.drop_table('cron_monitors')
    op.drop_index(op.f('ix_alert_rules_project_id'), table_name='alert_rules')
    op.drop_table('alert_rules')
    op.drop_index('ix_notification_sends_status', table_name='notification_sends')
    op.drop_index(op.f('ix_notification_sends_project_id'), table_name='notification_sends')
    op.drop_table('notification_sends')
    op.drop_index(op.f('ix_digests_project_id'), table_name='digests')
    op.drop_table('digests')
    op.drop_index(op.f('ix_digest_timelines_due_at'), table_name='digest_timelines')
    op.drop_table('digest_timelines')
    op.drop_index('ix_digest_records_pending', table_name='digest_records')
    op.drop_table('digest_records')
    op.drop_index('ix_cron_checkins_monitor_ts', table_name='cron_checkins')
    op.drop_table('cron_checkins')
    op.drop_table('alert_rule_fires')
