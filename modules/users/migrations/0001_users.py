"""users: single-use email tokens (verification, password reset)

Revision ID: 0001_users
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_users"
down_revision = None
branch_labels = ('users',)
depends_on = ('0001_kernel',)


def upgrade():
    op.create_table('user_tokens',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_tokens_token_hash'))
    )
    with op.batch_alter_table('user_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_tokens_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_user_tokens_user_purpose', ['tenant_id', 'user_id', 'purpose'], unique=False)


def downgrade():
    with op.batch_alter_table('user_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_user_tokens_user_purpose')
        batch_op.drop_index(batch_op.f('ix_user_tokens_tenant_id'))
    op.drop_table('user_tokens')
