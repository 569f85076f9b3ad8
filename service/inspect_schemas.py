"""Request schemas of the inspection endpoints: trace, evaluate, diagnostics pages."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, model_validator

from .schemas import EpochCursor, Input, Label, Row, Storable

Rows = Annotated[list[Row], Field(min_length=1)]
Labels = Annotated[list[Label], Field(min_length=1)]


class TraceIn(Input):
    """A few rows and their targets (regression) or labels (classification)."""

    inputs: Rows
    targets: Rows | None = None
    labels: Labels | None = None
    check: StrictBool = Field(False, description="Also compute central-difference gradients "
                              "(float64) and their relative errors.")

    @model_validator(mode="after")
    def _one_target_kind(self) -> TraceIn:
        if (self.targets is None) == (self.labels is None):
            raise ValueError("give exactly one of 'targets' (regression) or 'labels' "
                             "(classification)")
        return self


class EvaluateIn(Input):
    """A stored dataset, or inline rows with targets (regression) or labels (classification)."""

    dataset_id: Annotated[str, Field(strict=True, min_length=1, max_length=64), Storable] | None \
        = None
    inputs: Rows | None = None
    targets: Rows | None = None
    labels: Labels | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EvaluateIn:
        if (self.dataset_id is None) == (self.inputs is None):
            raise ValueError("give exactly one of 'dataset_id' or 'inputs' (with 'targets' or "
                             "'labels')")
        if self.dataset_id is not None and (self.targets is not None
                                            or self.labels is not None):
            raise ValueError("'targets' and 'labels' go with 'inputs', not with 'dataset_id'")
        if self.inputs is not None and (self.targets is None) == (self.labels is None):
            raise ValueError("give exactly one of 'targets' (regression) or 'labels' "
                             "(classification) with 'inputs'")
        return self


class DiagnosticsQuery(Input):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: EpochCursor | None = None
