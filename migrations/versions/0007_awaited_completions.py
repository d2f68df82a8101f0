"""completions a caller waits for: batches have a kind (batch or completion), jobs say whether
a caller is waiting (their result is written at once and announced)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Constant defaults: PostgreSQL and SQLite add these columns without rewriting the tables.
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='batch'))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('awaited', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('awaited')

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('kind')
