"""support: tickets

Revision ID: 0001_support
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_support"
down_revision = None
branch_labels = ("support",)
depends_on = ("0001_kernel", "0001_rbac")


def upgrade():
    op.create_table('support_tickets',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_tickets'))
    )
    with op.batch_alter_table('support_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_tickets_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_support_tickets_tenant_org_id', ['tenant_id', 'org_id', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('support_tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_support_tickets_tenant_org_id')
        batch_op.drop_index(batch_op.f('ix_support_tickets_tenant_id'))

    op.drop_table('support_tickets')
