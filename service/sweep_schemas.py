"""Request and response schemas of ``/v1/sweeps``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from .schemas import EpochCursor, Id, Input, JobCreate, ListQuery, Number, Storable

MAX_TRIALS = 1000
MAX_CONCURRENT = 64
MAX_GRID_POINTS = 1000

METRICS = ("val_loss", "val_accuracy", "loss", "accuracy")
Bounds = Annotated[list[Number], Field(min_length=2, max_length=2)]


class Dimension(Input):
    """Exactly one of `choice`, `uniform`, `log_uniform`, `int`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    choice: Annotated[list[Any], Field(min_length=1, max_length=MAX_GRID_POINTS)] | None = None
    uniform: Bounds | None = None
    log_uniform: Bounds | None = None
    int_: Annotated[list[StrictInt], Field(min_length=2, max_length=2)] | None = Field(
        None, alias="int")
    log: StrictBool = False
    points: Annotated[int, Field(strict=True, ge=1, le=MAX_GRID_POINTS)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        given = [k for k in ("choice", "uniform", "log_uniform", "int_") if
                 getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'choice', 'uniform', 'log_uniform', 'int'")
        bounds = getattr(self, given[0])
        if given[0] != "choice" and bounds[0] > bounds[1]:
            raise ValueError(f"the lower bound {bounds[0]} is above the upper bound {bounds[1]}")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform bounds must be > 0")
        if self.int_ is not None and self.log and self.int_[0] <= 0:
            raise ValueError("an int range with log: true needs bounds > 0")
        if self.log and self.int_ is None:
            raise ValueError("'log' applies to int ranges (use log_uniform for floats)")
        if self.points is not None and self.uniform is None and self.log_uniform is None:
            raise ValueError("'points' applies to uniform and log_uniform (grid strategy)")
        return self

    def plain(self) -> dict[str, Any]:
        out = self.model_dump(by_alias=True, exclude_none=True)
        if not out.get("log"):
            out.pop("log", None)
        return out


class Pruner(Input):
    """`median`: stop a trial whose best metric so far is worse than the median of the
    finished trials at the same epoch. `successive_halving` (asynchronous): at rungs of
    `min_epochs`·`reduction_factor`^k epochs, keep a trial only in the top 1/`reduction_factor`
    of the trials that reached the rung."""

    name: Literal["median", "successive_halving"]
    warmup_epochs: Annotated[int, Field(strict=True, ge=0)] = 5
    min_trials: Annotated[int, Field(strict=True, ge=1)] = 3
    min_epochs: Annotated[int, Field(strict=True, ge=1)] = 5
    reduction_factor: Annotated[int, Field(strict=True, ge=2)] = 3


class SweepCreate(Input):
    base: JobCreate
    space: Annotated[dict[Annotated[str, Field(min_length=1, max_length=200), Storable],
                          Dimension],
                     Field(min_length=1, max_length=32)]
    strategy: Literal["grid", "random", "tpe"] = "random"
    metric: Literal[METRICS] = "val_loss"  # type: ignore[valid-type]
    direction: Literal["minimize", "maximize"] | None = None
    max_trials: Annotated[int, Field(strict=True, ge=1, le=MAX_TRIALS)] = 20
    max_concurrent: Annotated[int, Field(strict=True, ge=1, le=MAX_CONCURRENT)] = 2
    pruner: Pruner | None = None
    seed: Annotated[int, Field(strict=True, ge=0, lt=2**32)] | None = None


class SweepPath(BaseModel):
    sweep_id: Id


class SweepListQuery(ListQuery):
    status: Literal["running", "succeeded", "failed", "cancelled"] | None = None


class TrialQuery(Input):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: EpochCursor | None = None  # an offset into the leaderboard (a next_cursor)


class BestTrial(BaseModel):
    job_id: str
    model_id: str | None
    number: int
    value: float
    params: dict[str, Any]


class TrialCounts(BaseModel):
    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    pruned: int


class SweepOut(BaseModel):
    id: str
    status: Literal["running", "succeeded", "failed", "cancelled"]
    spec: dict[str, Any]
    trials: TrialCounts
    best: BestTrial | None
    error: dict[str, str] | None
    created_at: str
    finished_at: str | None


class SweepPage(BaseModel):
    items: list[SweepOut]
    next_cursor: str | None


class TrialOut(BaseModel):
    number: int
    job_id: str
    status: str
    pruned: bool
    params: dict[str, Any]
    value: float | None
    epoch: int
    metrics: dict[str, Any] | None
    model_id: str | None
    error: dict[str, str] | None


class TrialPage(BaseModel):
    items: list[TrialOut]
    next_cursor: str | None

