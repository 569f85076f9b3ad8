"""inspection: per-layer diagnostics rows; gradient-check report, warnings and the validation
evaluation on jobs and models

Revision ID: 0006
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diagnostics",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("activation", sa.String(length=20), nullable=False),
        sa.Column("grad_norm_w", sa.Float(), nullable=True),
        sa.Column("grad_norm_b", sa.Float(), nullable=True),
        sa.Column("weight_norm", sa.Float(), nullable=True),
        sa.Column("update_ratio", sa.Float(), nullable=True),
        sa.Column("activation_mean", sa.Float(), nullable=True),
        sa.Column("activation_std", sa.Float(), nullable=True),
        sa.Column("dead_fraction", sa.Float(), nullable=True),
        sa.Column("saturated_fraction", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "epoch", "layer"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gradient_check", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evaluation", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("gradient_check", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("warnings")
        batch_op.drop_column("gradient_check")
        batch_op.drop_column("evaluation")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("warnings")
        batch_op.drop_column("gradient_check")
    op.drop_table("diagnostics")
