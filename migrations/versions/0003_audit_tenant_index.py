"""audit_entries: no index on tenant_id alone (the (tenant_id, id) index serves every tenant filter; one index
less to write on each insert, the hot path of the platform)

Revision ID: 0003_audit_tenant_index
Revises: 0002_audit_chain
"""
from alembic import op

revision = "0003_audit_tenant_index"
down_revision = "0002_audit_chain"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_audit_entries_tenant_id", table_name="audit_entries")


def downgrade():
    op.create_index("ix_audit_entries_tenant_id", "audit_entries", ["tenant_id"], unique=False)
