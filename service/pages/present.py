"""Finished values for the templates: numbers, times, progress and remedies as text."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

DASH = "\u2013"  # shown for a missing value

REMEDIES = {
    "Training diverged": "Lower the learning rate, keep standardize on, or add some l2; then "
                         "start a new job.",
    "Gradient check failed": "Backprop disagrees with numerical gradients on this network: "
                             "try another activation or init, and report the spec.",
    "Invalid job": "Fix the field named above and start a new job.",
    "Dataset deleted": "Upload the dataset again and start a new job on it.",
    "Could not load the dataset": "Upload the dataset again; if it recurs, check the "
                                  "database.",
    "Time limit exceeded": "Reduce epochs or rows, or raise TASK_SOFT_TIME_LIMIT.",
    "Too many attempts": "Its worker was lost each time: check the workers' memory and logs, "
                         "then start the job again.",
    "Internal error": "It has been logged; start the job again and report it if it recurs.",
}


def num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return DASH
    return f"{value:.{digits}g}"


def percent(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.1f}%"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def when(iso: str | None) -> str:
    if not iso:
        return DASH
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_row(job: dict[str, Any]) -> dict[str, Any]:
    """A job (``jobs.out``) as the jobs table and the job page show it."""
    p, m = job["progress"], job["metrics"] or {}
    eta = duration(p["eta_seconds"])
    error = job["error"]
    return {
        "id": job["id"], "status": job["status"], "dataset_id": job["dataset_id"],
        "model_id": job["model_id"],
        "active": job["status"] in ("queued", "running"),
        "percent": f"{100 * p['fraction']:.0f}",
        "epochs": f"{p['epoch']} / {p['epochs']}",
        "eta": f"ETA {eta}" if eta else "",
        "loss": num(m.get("loss")), "val_loss": num(m.get("val_loss")),
        "accuracy": percent(m.get("accuracy")), "val_accuracy": percent(m.get("val_accuracy")),
        "created": when(job["created_at"]), "started": when(job["started_at"]),
        "finished": when(job["finished_at"]), "attempts": job.get("attempts", 0),
        "error": {**error, "remedy": REMEDIES.get(error["title"], "")} if error else None,
    }


def spec_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True)


def optimizer_text(spec: dict[str, Any]) -> str:
    opt = dict(spec.get("training", {}).get("optimizer", {}))
    name = opt.pop("name", "?")
    return f"{name} ({', '.join(f'{k}={v}' for k, v in sorted(opt.items()))})"


def dataset_row(ds: dict[str, Any]) -> dict[str, Any]:
    classes = ds["classes"]
    return {"id": ds["id"], "name": ds["name"], "rows": f"{ds['rows']:,}",
            "features": ds["features"], "outputs": ds["outputs"], "task": ds["task"],
            "classes": ", ".join(map(str, classes)) if classes else DASH,
            "feature_names": ", ".join(map(str, ds["feature_names"])),
            "sha256": ds["sha256"], "created": when(ds["created_at"])}


def metrics_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for k, v in sorted(metrics.items()):
        if isinstance(v, float):
            v = percent(v) if "accuracy" in k else num(v)
        out.append((k, str(v)))
    return out


def model_row(m: dict[str, Any]) -> dict[str, Any]:
    return {"id": m["id"], "job_id": m["job_id"], "dataset_id": m["dataset_id"],
            "task": m["task"], "inputs": m["inputs"], "outputs": m["outputs"],
            "classes": ", ".join(map(str, m["classes"])) if m["classes"] else DASH,
            "feature_names": ", ".join(map(str, m["feature_names"])),
            "accuracy": percent(m["metrics"].get("accuracy")),
            "loss": num(m["metrics"].get("loss")),
            "metrics": metrics_rows(m["metrics"]), "created": when(m["created_at"]),
            "epochs_trained": m.get("epochs_trained"), "parent": m.get("parent_model_id"),
            "partial": partial_text(m.get("partial"))}


def partial_text(partial: dict[str, Any] | None) -> str | None:
    """How a partial model's training stopped, for people."""
    if not partial:
        return None
    why = "cancelled" if partial["reason"] == "cancelled" else "stopped at its time limit"
    return (f"Partial: its job was {why} at epoch {partial['epoch']} of {partial['epochs']}; "
            "these are the best weights so far")
