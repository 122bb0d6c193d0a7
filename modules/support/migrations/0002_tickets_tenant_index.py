"""support_tickets: no index on tenant_id alone (the (tenant_id, org_id, id) index serves every tenant filter; one index
less to write on each insert, the hot path of the platform)

Revision ID: 0002_support_tenant_index
Revises: 0001_support
"""
from alembic import op

revision = "0002_support_tenant_index"
down_revision = "0001_support"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_support_tickets_tenant_id", table_name="support_tickets")


def downgrade():
    op.create_index("ix_support_tickets_tenant_id", "support_tickets", ["tenant_id"], unique=False)
