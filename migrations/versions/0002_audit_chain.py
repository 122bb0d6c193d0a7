"""audit entries: per-tenant hash chain (seq, prev_hash, hash)

Revision ID: 0002_audit_chain
Revises: 0001_kernel
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_audit_chain"
down_revision = "0001_kernel"
branch_labels = None
depends_on = None

UNSEALED = sa.text("seq IS NULL")


def upgrade():
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_audit_entries_tenant_seq", ["tenant_id", "seq"])
        batch_op.create_index(
            "ix_audit_entries_unsealed",
            ["tenant_id", "id"],
            unique=False,
            postgresql_where=UNSEALED,
            sqlite_where=UNSEALED,
        )


def downgrade():
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_unsealed")
        batch_op.drop_constraint("uq_audit_entries_tenant_seq", type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
