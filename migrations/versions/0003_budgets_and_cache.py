"""budgets and cache

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('response_cache',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('response_cache', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_response_cache_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_exceeded_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('cache_mode', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved_cost', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('cache_mode', sa.Integer(), nullable=False, server_default='0'))



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('cache_mode')
        batch_op.drop_column('reserved_cost')

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('cache_mode')
        batch_op.drop_column('budget_exceeded_at')

    with op.batch_alter_table('response_cache', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_response_cache_expires_at'))

    op.drop_table('response_cache')
