"""packed bodies and retention: jobs' request and response bodies stored as deflated bytes
(dispatcher/store/bodies.py), NULL once pruned; batches record when their results were
downloaded and when their bodies were pruned; no unique index on (batch_id, custom_id);
fleet_turns, so that one worker at a time prunes

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_BODIES = ('body', 'response')
_CHUNK = 5000


def upgrade() -> None:
    op.create_table('fleet_turns',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('next_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('results_downloaded_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('pruned_at', sa.Float(), nullable=True))

    # Nothing looks a job up by custom_id, and intake refuses repeated ones: the unique index
    # only cost bytes and a B-tree insert per job.
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ux_jobs_batch_custom_id')

    # Rows stored before stay as their UTF-8 text, which bodies.unpack reads as it is; new
    # rows are packed. On PostgreSQL the type change rewrites the table (under its lock).
    if op.get_bind().dialect.name == 'postgresql':
        for name in _BODIES:
            op.execute(f"ALTER TABLE jobs ALTER COLUMN {name} TYPE bytea USING convert_to({name}, 'UTF8')")
        op.execute("ALTER TABLE jobs ALTER COLUMN body DROP NOT NULL")
        # Every job leaves two dead row versions (claim, result). Autovacuum's default waits for
        # 20% of the table to be dead, which for a table of millions of jobs is a whole batch:
        # at 2% it frees them while the batch runs, so later updates reuse the space.
        op.execute("ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02)")
    else:
        with op.batch_alter_table('jobs', schema=None) as batch_op:
            batch_op.alter_column('body', existing_type=sa.Text(), type_=sa.LargeBinary(), nullable=True)
            batch_op.alter_column('response', existing_type=sa.Text(), type_=sa.LargeBinary())


def downgrade() -> None:
    from dispatcher.store.bodies import unpack

    # Back to text: unpack every stored body first (pruned ones get an empty request body).
    connection = op.get_bind()
    jobs = sa.table('jobs', sa.column('id', sa.Integer), sa.column('body', sa.LargeBinary),
                    sa.column('response', sa.LargeBinary))
    last = 0
    while True:
        rows = connection.execute(
            sa.select(jobs.c.id, jobs.c.body, jobs.c.response).where(jobs.c.id > last)
            .order_by(jobs.c.id).limit(_CHUNK)
        ).all()
        if not rows:
            break
        for row in rows:
            connection.execute(jobs.update().where(jobs.c.id == row.id).values(
                body=unpack(row.body or b'{}').encode(),
                response=None if row.response is None else unpack(row.response).encode(),
            ))
        last = rows[-1].id
    if connection.dialect.name == 'postgresql':
        op.execute("ALTER TABLE jobs RESET (autovacuum_vacuum_scale_factor)")
        for name in _BODIES:
            op.execute(f"ALTER TABLE jobs ALTER COLUMN {name} TYPE text USING convert_from({name}, 'UTF8')")
        op.execute("ALTER TABLE jobs ALTER COLUMN body SET NOT NULL")
    else:
        with op.batch_alter_table('jobs', schema=None) as batch_op:
            batch_op.alter_column('body', existing_type=sa.LargeBinary(), type_=sa.Text(), nullable=False)
            batch_op.alter_column('response', existing_type=sa.LargeBinary(), type_=sa.Text())

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ux_jobs_batch_custom_id', ['batch_id', 'custom_id'], unique=True)

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('pruned_at')
        batch_op.drop_column('results_downloaded_at')
    op.drop_table('fleet_turns')
