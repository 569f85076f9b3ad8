"""Request and response schemas of ``/v1/models``: a trained model, and predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from .report_schemas import EvaluationOut, Finding, GradientCheckOut
from .schemas import Input, Number, Page


class Partial(BaseModel):
    reason: Literal["cancelled", "time_limit"]
    epoch: int = Field(description="The epoch training reached.")
    epochs: int = Field(description="The epoch it was to train up to.")


class ModelOut(BaseModel):
    id: str
    job_id: str
    dataset_id: str
    spec: dict[str, Any]
    inputs: int
    outputs: int
    task: Literal["regression", "classification"]
    classes: list[str | int] | None
    feature_names: list[str]
    metrics: dict[str, Any]
    evaluation: EvaluationOut | None = Field(
        description="The evaluation report on the job's validation rows (when it had some).")
    gradient_check: GradientCheckOut | None
    warnings: list[Finding]
    epochs_trained: int | None = Field(None, description=(
        "The epochs its training state has reached (counting those of the models it continues)."))
    parent_model_id: str | None = Field(None, description=(
        "The model it was trained further from (`continue_from`), if any."))
    partial: Partial | None = Field(None, description=(
        "Set when training stopped before its end: the model holds the best weights so far (by "
        "validation loss; the last ones without validation rows). It predicts and can be "
        "continued."))
    continuable: bool = Field(False, description=(
        "It keeps its final training state: a job can `continue_from` it."))
    created_at: datetime


class PredictIn(Input):
    inputs: Annotated[list[list[Number]], Field(
        min_length=1, description="Rows of the model's `inputs` numbers each (at most "
        "MAX_PREDICT_ROWS rows).")]


class PredictOut(BaseModel):
    """Regression models give `outputs` only; classifiers give all four fields."""

    outputs: list[list[float]] = Field(description=(
        "The network's output layer, one row per input row: the predicted values of a "
        "regression model; for a classifier the softmax (one column per class), or `[[p]]` "
        "with p the probability of `classes[1]` when it has one sigmoid unit. The downloaded "
        "weights compute exactly this."))
    probabilities: list[list[float]] | None = Field(None, description=(
        "Classifiers: the probability of each class, one column per class in `classes` "
        "order; each row sums to 1 (`[[1 - p, p]]` for one sigmoid unit)."))
    labels: list[str | int] | None = Field(None, description=(
        "Classifiers: the most probable class of each row."))
    classes: list[str | int] | None = Field(None, description=(
        "Classifiers: the class of each column of `probabilities`."))


class ModelPage(Page):
    items: list[ModelOut]
