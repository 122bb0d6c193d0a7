"""events: no index on tenant_id alone (the (tenant_id, name, id) index serves every tenant filter; one index
less to write on each insert, the hot path of the platform)

Revision ID: 0003_runtime_events_tenant_index
Revises: 0002_runtime_event_dispatch
"""
from alembic import op

revision = "0003_runtime_events_tenant_index"
down_revision = "0002_runtime_event_dispatch"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_events_tenant_id", table_name="events")


def downgrade():
    op.create_index("ix_events_tenant_id", "events", ["tenant_id"], unique=False)
