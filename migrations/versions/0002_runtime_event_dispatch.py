"""events: dispatched_at (deliveries are made by a fan-out job after commit)

Revision ID: 0002_runtime_event_dispatch
Revises: 0001_runtime
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_runtime_event_dispatch"
down_revision = "0001_runtime"
branch_labels = None
depends_on = None

UNDISPATCHED = sa.text("dispatched_at IS NULL")


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatched_at", sa.DateTime(), nullable=True))
    # events from before this revision got their deliveries in the emitting transaction
    op.execute("UPDATE events SET dispatched_at = created_at")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_undispatched",
            ["created_at"],
            unique=False,
            postgresql_where=UNDISPATCHED,
            sqlite_where=UNDISPATCHED,
        )


def downgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_undispatched")
        batch_op.drop_column("dispatched_at")
