"""idempotent outcomes and poison jobs: attempts carry their claim (one call per claim), jobs
count the workers that died running them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim', sa.Integer(), nullable=True))
        batch_op.create_index('ux_attempts_job_claim', ['job_id', 'claim'], unique=True)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_deaths', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('worker_deaths')

    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index('ux_attempts_job_claim')
        batch_op.drop_column('claim')
