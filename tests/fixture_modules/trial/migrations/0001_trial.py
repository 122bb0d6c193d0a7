"""trial (test-only module): subscriptions

Revision ID: 0001_trial
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_trial"
down_revision = None
branch_labels = ("trial",)
depends_on = ("0001_kernel", "0001_orgs")


def upgrade():
    op.create_table(
        "trial_subscriptions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("plan", sa.String(length=20), nullable=False),
        sa.Column("trial_ends_at", sa.DateTime(), nullable=False),
        sa.Column("warned_at", sa.DateTime(), nullable=True),
        sa.Column("expired_at", sa.DateTime(), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_subscriptions")),
        sa.UniqueConstraint("tenant_id", "org_id", name="uq_trial_subscriptions_tenant_org"),
    )
    with op.batch_alter_table("trial_subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trial_subscriptions_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    op.drop_table("trial_subscriptions")
