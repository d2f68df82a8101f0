"""API keys and uploaded files: keys (only a hash of the secret), files stored in parts of
1 MiB, and batches that belong to a key and name their input file

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('models', sa.Text(), nullable=True),
    sa.Column('max_priority', sa.Integer(), nullable=True),
    sa.Column('max_cost', sa.Float(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('secret_hash')
    )

    op.create_table('files',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=40), nullable=True),
    sa.Column('filename', sa.String(length=512), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index('ix_files_owner_created_at', ['owner', 'created_at'], unique=False)

    op.create_table('file_parts',
    sa.Column('file_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('file_id', 'seq')
    )

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('input_file_id', sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_batches_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_owner'))
        batch_op.drop_column('input_file_id')
        batch_op.drop_column('owner')

    op.drop_table('file_parts')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index('ix_files_owner_created_at')

    op.drop_table('files')
    op.drop_table('api_keys')
