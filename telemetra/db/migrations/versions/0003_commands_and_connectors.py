"""commands and connectors

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa

import telemetra.db.types
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('commands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='queued', nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('expires_at', telemetra.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', telemetra.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', telemetra.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', telemetra.db.types.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', telemetra.db.types.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_commands_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_commands_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_commands_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commands'))
    )
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index('ix_commands_device_status', ['device_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_commands_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_commands_organization_id'), ['organization_id'], unique=False)

    op.create_table('connectors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('topic', sa.String(length=300), nullable=True),
    sa.Column('key', sa.String(length=100), nullable=True),
    sa.Column('format', sa.String(length=20), server_default='auto', nullable=False),
    sa.Column('byte_order', sa.String(length=10), server_default='little', nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=True),
    sa.Column('max_age_seconds', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('last_run_at', telemetra.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', telemetra.db.types.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', telemetra.db.types.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_connectors_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_connectors_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connectors')),
    sa.UniqueConstraint('organization_id', 'name', name=op.f('uq_connectors_organization_id_name'))
    )
    with op.batch_alter_table('connectors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connectors_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_connectors_organization_id'), ['organization_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('connectors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connectors_organization_id'))
        batch_op.drop_index(batch_op.f('ix_connectors_device_id'))

    op.drop_table('connectors')
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commands_organization_id'))
        batch_op.drop_index(batch_op.f('ix_commands_expires_at'))
        batch_op.drop_index('ix_commands_device_status')

    op.drop_table('commands')
