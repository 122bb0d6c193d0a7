"""orgs: organizations and invitations

Revision ID: 0001_orgs
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_orgs"
down_revision = None
branch_labels = ('orgs',)
depends_on = ('0001_rbac',)


def upgrade():
    op.create_table('organizations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('owner_id', sa.String(length=40), nullable=False),
    sa.Column('role_set_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_organizations_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations')),
    sa.UniqueConstraint('tenant_id', 'slug', name='uq_organizations_tenant_slug')
    )
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organizations_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('org_invitations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('invited_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('responded_at', sa.DateTime(), nullable=True),
    sa.Column('sent_count', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_org_invitations_org_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['rbac_roles.id'], name=op.f('fk_org_invitations_role_id_rbac_roles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_org_invitations_token_hash'))
    )
    with op.batch_alter_table('org_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_org_invitations_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_org_invitations_tenant_id'), ['tenant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('org_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_org_invitations_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_org_invitations_org_id'))
    op.drop_table('org_invitations')
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organizations_tenant_id'))
    op.drop_table('organizations')
