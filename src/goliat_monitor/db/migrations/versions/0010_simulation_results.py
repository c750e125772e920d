"""a campaign's simulations and results: parsed "Simulation N/M" marks and result figures

- simulation_runs keeps, per assignment and GOLIAT simulation number, when the agent's parsed
  output started, finished or failed it, for the simulation map;
- result_figures keeps the figures of each uploaded sar_results.json / sapd_results.json, parsed
  once on upload, for the results table;
- timing_samples gets an index by (assignment, simulation) for a simulation's timings.

Revision ID: 0010_simulation_results
Revises: 0007_accounts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_simulation_results"
down_revision = "0007_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "simulation_runs",
        sa.Column("assignment_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("worker_id", sa.String(length=36), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("case_label", sa.String(length=1024), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("failed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_simulation_runs_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assignment_id", "number", name=op.f("pk_simulation_runs")),
    )
    op.create_table(
        "result_figures",
        sa.Column("assignment_id", sa.String(length=36), nullable=False),
        sa.Column("relative_path", sa.String(length=1024), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_result_figures_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assignment_id", "relative_path", "filename", name=op.f("pk_result_figures")),
    )
    with op.batch_alter_table("timing_samples", schema=None) as batch_op:
        batch_op.create_index(
            "ix_timing_samples_assignment_simulation", ["assignment_id", "simulation"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("timing_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_timing_samples_assignment_simulation")
    op.drop_table("result_figures")
    op.drop_table("simulation_runs")
