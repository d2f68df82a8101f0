"""successful calls on the job row: the call that gave a job its result is read from the job
(``jobs.call_outcome``) instead of a second, attempts row repeating its deployment, tokens,
cost and latency (dispatcher/store/calls.py)

Rows stored before keep their attempts rows and a NULL call_outcome, which means exactly that.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_outcome', sa.String(length=12), nullable=True))


def downgrade() -> None:
    # Give the calls held by job rows back their attempts rows, so usage reports stay whole.
    op.execute(
        "INSERT INTO attempts (job_id, batch_id, number, claim, model_group, deployment_id, "
        "started_at, ended_at, latency_ms, outcome, status_code, prompt_tokens, completion_tokens, "
        "total_tokens, cached_tokens, cost, request_id) "
        "SELECT id, batch_id, attempts, claim, model_group, deployment_id, "
        "finished_at - COALESCE(latency_ms, 0) / 1000.0, finished_at, latency_ms, call_outcome, "
        "response_status, prompt_tokens, completion_tokens, total_tokens, cached_tokens, cost, request_id "
        "FROM jobs WHERE call_outcome IS NOT NULL"
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('call_outcome')
