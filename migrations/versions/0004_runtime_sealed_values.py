"""sealed_values: secrets jobs need (reset links, invitation codes), encrypted and referenced
from job payloads instead of stored in them; tokens already in mail job payloads are blanked

Revision ID: 0004_runtime_sealed_values
Revises: 0003_runtime_events_tenant_index
"""
import re

import sqlalchemy as sa
from alembic import op

revision = "0004_runtime_sealed_values"
down_revision = "0003_runtime_events_tenant_index"
branch_labels = None
depends_on = None

#: verification, reset and invitation tokens as the users and orgs modules mint them
_TOKEN = re.compile(r"bb[vri]_[A-Za-z0-9_-]{16,}")


def upgrade():
    op.create_table(
        "sealed_values",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sealed_values")),
    )
    with op.batch_alter_table("sealed_values", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sealed_values_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sealed_values_tenant_id"), ["tenant_id"], unique=False)
    _blank_tokens_in_mail_jobs()


def _blank_tokens_in_mail_jobs():
    """Mail jobs queued before this change carry their links' tokens in clear: blank them."""
    jobs = sa.table("job_runs", sa.column("id", sa.String), sa.column("name", sa.String),
                    sa.column("payload", sa.JSON))
    conn = op.get_bind()
    rows = conn.execute(sa.select(jobs.c.id, jobs.c.payload).where(jobs.c.name == "bunbase.mail.send")).all()
    for job_id, payload in rows:
        text = (payload or {}).get("text")
        if isinstance(text, str) and _TOKEN.search(text):
            conn.execute(jobs.update().where(jobs.c.id == job_id)
                         .values(payload={**payload, "text": _TOKEN.sub("[redacted]", text)}))


def downgrade():
    with op.batch_alter_table("sealed_values", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sealed_values_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_sealed_values_expires_at"))
    op.drop_table("sealed_values")
