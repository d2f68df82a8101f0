"""provider batches: the route through the providers' own batch APIs (provider_batches, one
row per batch at a provider), each batch's route, the provider batch a job is in, and each
attempt's route

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('provider_batches',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('model_group', sa.String(length=200), nullable=False),
    sa.Column('deployment_id', sa.String(length=200), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('claim', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=64), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('cancel_sent', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('input_file_id', sa.String(length=200), nullable=True),
    sa.Column('remote_id', sa.String(length=200), nullable=True),
    sa.Column('output_ref', sa.Text(), nullable=True),
    sa.Column('error_ref', sa.Text(), nullable=True),
    sa.Column('provider_status', sa.String(length=32), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('upload_started_at', sa.Float(), nullable=True),
    sa.Column('create_started_at', sa.Float(), nullable=True),
    sa.Column('submitted_at', sa.Float(), nullable=True),
    sa.Column('ended_at', sa.Float(), nullable=True),
    sa.Column('imported_at', sa.Float(), nullable=True),
    sa.Column('next_poll_at', sa.Float(), nullable=False),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('provider_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_batches_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_provider_batches_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_provider_batches_worker_id'), ['worker_id'], unique=False)

    # New columns are nullable or have a constant default: no table rewrite. ix_attempts_job_id
    # goes: ux_attempts_job_claim (job_id, claim) serves the same lookups, and one index fewer
    # to maintain per attempt speeds up every result write.
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route', sa.String(length=16), nullable=True))
        batch_op.drop_index('ix_attempts_job_id')

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('via', sa.String(length=16), server_default='realtime', nullable=False))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remote_part', sa.String(length=40), nullable=True))
        batch_op.create_index('ix_jobs_remote_part', ['remote_part'], unique=False,
                              postgresql_where=sa.text("status = 'remote'"),
                              sqlite_where=sa.text("status = 'remote'"))



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_remote_part')
        batch_op.drop_column('remote_part')

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('via')

    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index('ix_attempts_job_id', ['job_id'], unique=False)
        batch_op.drop_column('route')

    with op.batch_alter_table('provider_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_batches_worker_id'))
        batch_op.drop_index(batch_op.f('ix_provider_batches_state'))
        batch_op.drop_index(batch_op.f('ix_provider_batches_batch_id'))

    op.drop_table('provider_batches')
