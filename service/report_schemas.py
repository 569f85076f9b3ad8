"""Output schemas of what the service reports about the inside of a network: findings, the
gradient-check report, evaluation reports, per-layer diagnostics and a traced step. They
document the answers in the OpenAPI document (the views build plain dicts)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from backprop.findings import RULES

FindingName = Literal[tuple(RULES)]  # type: ignore[valid-type]
Matrix = list[list[float]]


class Finding(BaseModel):
    """Advice drawn from the run, with the rule and the threshold it used."""

    name: FindingName
    message: str
    rule: str
    threshold: float
    value: float
    layer: int | None = Field(description="Layer index the finding is about, if one.")
    epoch: int | None


class GradientCheckLayer(BaseModel):
    layer: str
    relative_error: float
    parameters_checked: int


class GradientCheckOut(BaseModel):
    """Backprop against central differences (float64) before training."""

    passed: bool
    tolerance: float
    rows: int = Field(description="Training rows the check used.")
    eps: float
    worst_layer: str
    max_error: float
    layers: list[GradientCheckLayer]


class ClassMetrics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str | int = Field(alias="class")
    precision: float
    recall: float
    f1: float
    support: int


class ConfusionMatrix(BaseModel):
    labels: list[str | int] = Field(description="Class names; rows are true, columns predicted.")
    matrix: list[list[int]]


class ClassificationReport(BaseModel):
    task: Literal["classification"]
    rows: int
    accuracy: float
    classes: list[str | int]
    per_class: list[ClassMetrics]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    confusion_matrix: ConfusionMatrix
    log_loss: float | None
    roc_auc: float | None = Field(description="Binary: AUC of the second class; more classes: "
                                  "one-vs-rest macro. Null when a class has no positive row.")


class RegressionMetrics(BaseModel):
    mse: float
    rmse: float
    mae: float
    r2: float | None = Field(description="Null below 2 rows.")


class OutputMetrics(RegressionMetrics):
    name: str


class RegressionReport(BaseModel):
    task: Literal["regression"]
    rows: int
    outputs: list[OutputMetrics]
    overall: RegressionMetrics = Field(description="Means over the outputs.")


EvaluationOut = Annotated[ClassificationReport | RegressionReport, Field(discriminator="task")]


class EvaluateOut(RootModel[EvaluationOut]):
    """The report (scikit-learn's definitions) on the rows given."""


class DiagnosticsLayer(BaseModel):
    layer: int
    activation: str
    grad_norm_W: float | None  # noqa: N815
    grad_norm_b: float | None
    weight_norm: float | None
    update_ratio: float | None = Field(description="||W after - W before|| / ||W before|| of "
                                       "the epoch's last optimiser step.")
    activation_mean: float | None
    activation_std: float | None
    dead_fraction: float | None = Field(description="relu/leaky_relu: units never active on "
                                        "the sampled rows.")
    saturated_fraction: float | None = Field(description="sigmoid/tanh: outputs within 1 % "
                                             "of their bounds.")


class DiagnosticsEpoch(BaseModel):
    epoch: int
    layers: list[DiagnosticsLayer]


class DiagnosticsPage(BaseModel):
    items: list[DiagnosticsEpoch]
    next_cursor: str | None


class TraceLayer(BaseModel):
    layer: int
    activation: str
    W: Matrix
    b: list[float]
    z: Matrix = Field(description="Weighted sums a_prev W + b, one row per input row.")
    a: Matrix = Field(description="Activations f(z).")
    delta: Matrix = Field(description="dE/dz: f'(z) * (delta_next W_next^T) below the output.")
    grad_W: Matrix = Field(description="dE/dW = a_prev^T delta (+ l2 W).")  # noqa: N815
    grad_b: list[float]
    numeric_grad_W: Matrix | None = Field(description="Central differences (with check).")  # noqa: N815
    numeric_grad_b: list[float] | None
    relative_error_W: float | None  # noqa: N815
    relative_error_b: float | None


class TraceCheck(BaseModel):
    eps: float
    max_relative_error: float


class TraceOut(BaseModel):
    """One forward and backward pass at the model's weights, in float64."""

    loss: float = Field(description="E: the training loss (mean over rows, + l2 term).")
    loss_function: str
    l2: float
    rows: int
    inputs: Matrix = Field(description="The rows as the network sees them (standardized if "
                           "the model standardizes).")
    targets: Matrix = Field(description="Targets as the network sees them (one-hot labels).")
    layers: list[TraceLayer]
    check: TraceCheck | None
