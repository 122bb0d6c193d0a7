"""api_keys: service accounts and API keys

Revision ID: 0001_api_keys
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_api_keys"
down_revision = None
branch_labels = ('api_keys',)
depends_on = ('0001_rbac', '0001_orgs')


def upgrade():
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('owner_type', sa.String(length=20), nullable=False),
    sa.Column('owner_id', sa.String(length=40), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_by', sa.String(length=40), nullable=True),
    sa.Column('rotated_from_id', sa.String(length=40), nullable=True),
    sa.Column('replaced_by_id', sa.String(length=40), nullable=True),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('last_used_ip', sa.String(length=64), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_api_keys_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('tenant_id', 'prefix', name='uq_api_keys_tenant_prefix')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index('ix_api_keys_owner', ['tenant_id', 'owner_type', 'owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_keys_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_api_keys_tenant_org_id', ['tenant_id', 'org_id', 'id'], unique=False)

    op.create_table('service_accounts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('disabled_at', sa.DateTime(), nullable=True),
    sa.Column('disabled_by', sa.String(length=40), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_service_accounts_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_accounts')),
    sa.UniqueConstraint('org_id', 'name', name='uq_service_accounts_org_name')
    )
    with op.batch_alter_table('service_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_accounts_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_service_accounts_tenant_org_id', ['tenant_id', 'org_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('service_accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_service_accounts_tenant_org_id')
        batch_op.drop_index(batch_op.f('ix_service_accounts_tenant_id'))
    op.drop_table('service_accounts')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_api_keys_tenant_org_id')
        batch_op.drop_index(batch_op.f('ix_api_keys_tenant_id'))
        batch_op.drop_index('ix_api_keys_owner')
    op.drop_table('api_keys')
