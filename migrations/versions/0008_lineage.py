"""Continuing models: the final training state a model keeps, its lineage, partial models

Revision ID: 0008
Revises: 0002
Create Date: 2026-12-02 00:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_model_id", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_jobs_parent_model_id", ["parent_model_id"])
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_model_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("epochs_trained", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("partial", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("state_blob_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key("fk_models_state_blob_id_blobs", "blobs",
                                    ["state_blob_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_constraint("fk_models_state_blob_id_blobs", type_="foreignkey")
        batch_op.drop_column("state_blob_id")
        batch_op.drop_column("partial")
        batch_op.drop_column("epochs_trained")
        batch_op.drop_column("parent_model_id")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_parent_model_id")
        batch_op.drop_column("parent_model_id")
