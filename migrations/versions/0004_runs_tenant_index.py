"""action_runs: no index on tenant_id alone (the (tenant_id, id) and (tenant_id, action_name, id)
indexes serve every tenant filter; one index less to write for every run the buffer flushes)

Revision ID: 0004_runs_tenant_index
Revises: 0003_audit_tenant_index
"""
from alembic import op

revision = "0004_runs_tenant_index"
down_revision = "0003_audit_tenant_index"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_action_runs_tenant_id", table_name="action_runs")


def downgrade():
    op.create_index("ix_action_runs_tenant_id", "action_runs", ["tenant_id"], unique=False)
