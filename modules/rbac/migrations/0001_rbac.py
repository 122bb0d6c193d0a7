"""rbac: roles, permissions, role sets, memberships, decisions

Revision ID: 0001_rbac
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_rbac"
down_revision = None
branch_labels = ('rbac',)
depends_on = ('0001_kernel',)


def upgrade():
    op.create_table('rbac_decisions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=40), nullable=True),
    sa.Column('principal_id', sa.String(length=40), nullable=True),
    sa.Column('org_id', sa.String(length=40), nullable=True),
    sa.Column('permission', sa.String(length=120), nullable=False),
    sa.Column('allowed', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=400), nullable=False),
    sa.Column('action_name', sa.String(length=200), nullable=True),
    sa.Column('trace_id', sa.String(length=64), nullable=True),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rbac_decisions'))
    )
    with op.batch_alter_table('rbac_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_rbac_decisions_lookup', ['tenant_id', 'actor_id', 'org_id', 'permission'], unique=False)
        batch_op.create_index(batch_op.f('ix_rbac_decisions_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('rbac_role_sets',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rbac_role_sets')),
    sa.UniqueConstraint('tenant_id', 'key', name='uq_rbac_role_sets_tenant_key')
    )
    with op.batch_alter_table('rbac_role_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rbac_role_sets_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('rbac_roles',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('is_system', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rbac_roles')),
    sa.UniqueConstraint('tenant_id', 'key', name='uq_rbac_roles_tenant_key')
    )
    with op.batch_alter_table('rbac_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rbac_roles_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('memberships',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('principal_type', sa.String(length=20), nullable=False),
    sa.Column('principal_id', sa.String(length=40), nullable=False),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['rbac_roles.id'], name=op.f('fk_memberships_role_id_rbac_roles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
    sa.UniqueConstraint('org_id', 'principal_type', 'principal_id', name='uq_memberships_principal')
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_org_id'), ['org_id'], unique=False)
        batch_op.create_index('ix_memberships_principal', ['tenant_id', 'principal_type', 'principal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_memberships_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('rbac_role_permissions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('permission', sa.String(length=120), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['rbac_roles.id'], name=op.f('fk_rbac_role_permissions_role_id_rbac_roles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rbac_role_permissions')),
    sa.UniqueConstraint('role_id', 'permission', name='uq_rbac_role_permission')
    )
    with op.batch_alter_table('rbac_role_permissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rbac_role_permissions_role_id'), ['role_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rbac_role_permissions_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('rbac_role_set_roles',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('role_set_id', sa.String(length=40), nullable=False),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('is_creator_role', sa.Boolean(), nullable=False),
    sa.Column('is_default_member_role', sa.Boolean(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['rbac_roles.id'], name=op.f('fk_rbac_role_set_roles_role_id_rbac_roles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_set_id'], ['rbac_role_sets.id'], name=op.f('fk_rbac_role_set_roles_role_set_id_rbac_role_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rbac_role_set_roles')),
    sa.UniqueConstraint('role_set_id', 'role_id', name='uq_rbac_role_set_role')
    )
    with op.batch_alter_table('rbac_role_set_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rbac_role_set_roles_role_set_id'), ['role_set_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rbac_role_set_roles_tenant_id'), ['tenant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('rbac_role_set_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_role_set_roles_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_rbac_role_set_roles_role_set_id'))
    op.drop_table('rbac_role_set_roles')
    with op.batch_alter_table('rbac_role_permissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_role_permissions_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_rbac_role_permissions_role_id'))
    op.drop_table('rbac_role_permissions')
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memberships_tenant_id'))
        batch_op.drop_index('ix_memberships_principal')
        batch_op.drop_index(batch_op.f('ix_memberships_org_id'))
    op.drop_table('memberships')
    with op.batch_alter_table('rbac_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_roles_tenant_id'))
    op.drop_table('rbac_roles')
    with op.batch_alter_table('rbac_role_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_role_sets_tenant_id'))
    op.drop_table('rbac_role_sets')
    with op.batch_alter_table('rbac_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rbac_decisions_tenant_id'))
        batch_op.drop_index('ix_rbac_decisions_lookup')
    op.drop_table('rbac_decisions')
