"""action_runs.org_id: the org a run acted in, as its in_org guard verified it; with the
actor it decides who may read the run

Revision ID: 0005_runs_org
Revises: 0004_runs_tenant_index
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_runs_org"
down_revision = "0004_runs_tenant_index"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("action_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("org_id", sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table("action_runs", schema=None) as batch_op:
        batch_op.drop_column("org_id")
