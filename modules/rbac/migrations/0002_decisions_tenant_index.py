"""rbac_decisions: no index on tenant_id alone (the lookup index leads with tenant_id and serves
every tenant filter; one index less to write for every decision the buffer flushes)

Revision ID: 0002_rbac_decisions_tenant_index
Revises: 0001_rbac
"""
from alembic import op

revision = "0002_rbac_decisions_tenant_index"
down_revision = "0001_rbac"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_rbac_decisions_tenant_id", table_name="rbac_decisions")


def downgrade():
    op.create_index("ix_rbac_decisions_tenant_id", "rbac_decisions", ["tenant_id"], unique=False)
