"""idempotency_keys.owner: the process running a claimed request, so a key whose process
died is released at once instead of answering 409 until it is stale

Revision ID: 0006_idempotency_owner
Revises: 0005_runs_org
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_idempotency_owner"
down_revision = "0005_runs_org"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("owner")
