"""Request and response schemas (pydantic v2). Inputs forbid unknown fields and non-finite numbers.

Responses are built as plain dicts by the views; the output models here document them in the
OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from backprop.activations import ACTIVATIONS
from backprop.initializers import INITIALIZERS
from backprop.losses import LOSSES
from backprop.optimizers import OPTIMIZERS
from backprop.schedules import SCHEDULES

from .report_schemas import Finding, GradientCheckOut


def storable(value: str) -> str:
    """Text the database can hold: PostgreSQL refuses the NUL character (SQLite would keep
    it), so it is refused here, alike on every database."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


def _cursor(value: str) -> str:
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise ValueError("must be a next_cursor value from a previous page (an epoch number)")
    return value


Storable = AfterValidator(storable)
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
PositiveNumber = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
NonNegative = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
Fraction = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, lt=1)]
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
MAX_NAME_CHARS = 200  # the name columns (String(200)); feature names and labels alike
Name = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_NAME_CHARS), Storable]
Label = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_CHARS), Storable] | StrictInt
Id = Annotated[str, Field(max_length=64), Storable]
Cursor = Annotated[str, Field(max_length=100), Storable]
EpochCursor = Annotated[str, Field(max_length=100), AfterValidator(_cursor)]
Row = Annotated[list[Number], Field(min_length=1)]

Activation = Literal[tuple(sorted(ACTIVATIONS))]  # type: ignore[valid-type]
Init = Literal[tuple(sorted(INITIALIZERS))]  # type: ignore[valid-type]
LossName = Literal[tuple(sorted(LOSSES))]  # type: ignore[valid-type]
OptimizerName = Literal[tuple(sorted(OPTIMIZERS))]  # type: ignore[valid-type]
ScheduleName = Literal[tuple(sorted(SCHEDULES))]  # type: ignore[valid-type]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- datasets --------------------------------------------------------------------------------


class DatasetCreate(Input):
    """A dataset as JSON: ``targets`` (numbers) for regression, or ``labels`` for classification."""

    name: Name
    inputs: Annotated[list[Row], Field(min_length=1)]
    targets: Annotated[list[Row], Field(min_length=1)] | None = None
    labels: Annotated[list[Label], Field(min_length=1)] | None = None
    feature_names: list[Name] | None = None

    @model_validator(mode="after")
    def _one_target_kind(self) -> DatasetCreate:
        if (self.targets is None) == (self.labels is None):
            raise ValueError("give exactly one of 'targets' (numbers, for regression) or "
                             "'labels' (class names, for classification)")
        return self


class DatasetOut(BaseModel):
    id: str
    name: str
    rows: int
    features: int
    outputs: int
    task: Literal["regression", "classification"]
    classes: list[str | int] | None
    feature_names: list[str]
    sha256: str
    created_at: datetime


# -- jobs --------------------------------------------------------------------------------------


class LayerIn(Input):
    units: PositiveInt
    activation: Activation | None = None
    init: Init | None = None


class NetworkIn(Input):
    layers: Annotated[list[LayerIn], Field(min_length=1)]
    init: Init | None = None
    init_scale: PositiveNumber | None = None


class OptimizerIn(Input):
    name: OptimizerName = "sgd"
    learning_rate: PositiveNumber | None = None
    momentum: Fraction | None = None
    nesterov: StrictBool | None = None
    beta1: Fraction | None = None
    beta2: Fraction | None = None
    rho: Fraction | None = None
    epsilon: PositiveNumber | None = None
    eta_plus: PositiveNumber | None = None
    eta_minus: PositiveNumber | None = None
    step_min: NonNegative | None = None
    step_max: PositiveNumber | None = None


class ScheduleIn(Input):
    name: ScheduleName = "constant"
    step_size: PositiveInt | None = None
    gamma: PositiveNumber | None = None
    power: PositiveNumber | None = None
    factor: PositiveNumber | None = None
    patience: PositiveInt | None = None
    min_delta: NonNegative | None = None
    min_lr: NonNegative | None = None


class EarlyStoppingIn(Input):
    patience: PositiveInt = 10
    min_delta: NonNegative = 0.0


class DiagnosticsIn(Input):
    """Per-layer diagnostics (gradient and weight norms, update ratio, activation statistics,
    dead and saturated units) recorded at the end of every `every`-th epoch."""

    every: PositiveInt = 10


class TrainingIn(Input):
    loss: LossName | None = None
    optimizer: OptimizerIn | None = None
    epochs: PositiveInt | None = None
    batch_size: PositiveInt | Literal["full"] | None = None
    shuffle: StrictBool | None = None
    l2: NonNegative | None = None
    lr_schedule: ScheduleIn | None = None
    validation_split: Fraction | None = None
    early_stopping: EarlyStoppingIn | None = None
    target_loss: NonNegative | None = None
    standardize: StrictBool | None = None
    seed: Annotated[int, Field(strict=True, ge=0, lt=2**63)] | None = None
    gradient_check: StrictBool | None = None
    dtype: Literal["float32", "float64"] | None = None
    diagnostics: DiagnosticsIn | None = None
    kernel: Annotated[Literal["auto", "numpy", "compiled"] | None, Field(
        description="Training kernel: 'auto' (compiled where it pays and numba is installed), "
                    "'numpy', or 'compiled' (422 when numba is not installed).")] = None


class ContinueFrom(Input):
    """Train a stored model further: its final training state (weights, optimiser state,
    schedule, random generator, epoch counter) is where this job starts."""

    model_id: Id


class JobCreate(Input):
    """A training job: a dataset (by id, or inline) and a network spec; or `continue_from` a
    model, with the fields to change and `training.epochs` more epochs."""

    dataset_id: Annotated[str, Field(strict=True, min_length=1, max_length=64), Storable] | None \
        = None
    dataset: DatasetCreate | None = None
    continue_from: ContinueFrom | None = Field(None, description=(
        "Train this model further. Its spec is the job's, with the `network` (which must be the "
        "same architecture) and the `training` fields given here in its place; `epochs` counts "
        "the epochs to train after the model's. The dataset defaults to the model's and may be "
        "another of the same width. Unchanged optimiser settings keep the optimiser's state; "
        "the resolved spec's `continue_from` says what was kept. With nothing changed, 100 "
        "epochs then 100 more give the weights of 200 in one job, bit for bit."))
    network: NetworkIn | None = None
    training: TrainingIn | None = None

    @model_validator(mode="after")
    def _one_dataset(self) -> JobCreate:
        if (self.dataset_id is not None and self.dataset is not None) or (
                self.dataset_id is None and self.dataset is None and self.continue_from is None):
            raise ValueError("give exactly one of 'dataset_id' or 'dataset'")
        return self  # a missing ``network`` (without ``continue_from``): jobs.resolved_spec

    def engine_spec(self) -> dict[str, Any]:
        """The spec in the engine's terms: only the fields the client gave."""
        return self.model_dump(include={"network", "training"}, exclude_none=True)


class IdempotencyHeader(BaseModel):
    model_config = ConfigDict(extra="allow")
    idempotency_key: Annotated[str, Field(max_length=200, min_length=1), Storable] | None = Field(
        None, alias="Idempotency-Key",
        description="Same key and body within 24 h returns the first job.")


class Progress(BaseModel):
    epoch: int
    epochs: int
    fraction: float
    eta_seconds: float | None


class Metrics(BaseModel):
    loss: float | None = None
    val_loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None


class ErrorOut(BaseModel):
    title: str
    detail: str


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    dataset_id: str
    spec: dict[str, Any]
    progress: Progress
    metrics: Metrics | None
    model_id: str | None = Field(description=(
        "The model it made: on success, and also when it was cancelled or hit its time limit "
        "while running (a partial model of the best weights so far, see the model's `partial`)."))
    parent_model_id: str | None = Field(None, description=(
        "The model this job trains further (`continue_from`)."))
    error: ErrorOut | None
    attempts: int
    gradient_check: GradientCheckOut | None = Field(
        description="The report of `training.gradient_check`, when it ran (also on a failure).")
    warnings: list[Finding] = Field(
        description="Findings about the run (advice, never a failure).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class HistoryRow(BaseModel):
    epoch: int
    loss: float
    val_loss: float | None
    accuracy: float | None
    val_accuracy: float | None
    learning_rate: float
    seconds: float


# -- lists, paths, problems --------------------------------------------------------------------


class ListQuery(Input):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Cursor | None = None


class HistoryQuery(Input):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: EpochCursor | None = None
    order: Annotated[Literal["asc", "desc"], Field(
        description="`asc`: oldest epochs first (the cursor pages forward); `desc`: newest "
                    "first, so `?order=desc&limit=5` is the last five epochs (the cursor pages "
                    "back)")] = "asc"


class JobListQuery(ListQuery):
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None


class DatasetCsvQuery(Input):
    name: Name | None = None
    target: Annotated[str, Field(min_length=1, max_length=2000), Storable] | None = None


class DatasetPath(BaseModel):
    dataset_id: Id


class JobPath(BaseModel):
    job_id: Id


class ModelPath(BaseModel):
    model_id: Id


class Page(BaseModel):
    items: list[Any]
    next_cursor: str | None


class DatasetPage(Page):
    items: list[DatasetOut]


class JobPage(Page):
    items: list[JobOut]


class HistoryPage(Page):
    items: list[HistoryRow]


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = None
