"""``GET /v1/models/{id}/export?format=onnx``: the file onnxruntime runs, and its errors."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from .helpers import BLOBS, QUICK, XOR, problem, train


def _session(content: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(content, providers=["CPUExecutionProvider"])


def test_onnx_export_of_a_classifier_predicts_like_the_service(app: Any, client: Any,
                                                               auth: dict[str, str]) -> None:
    job = train(app, client, auth, BLOBS, [{"units": 6}, {"units": 3}], {**QUICK, "epochs": 80})
    resp = client.get(f"/v1/models/{job['model_id']}/export?format=onnx", headers=auth)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/onnx"
    assert f'filename="{job["model_id"]}.onnx"' in resp.headers["Content-Disposition"]
    X = np.asarray(BLOBS["inputs"], dtype=np.float32)
    probs, labels = _session(resp.data).run(["probabilities", "labels"], {"inputs": X})
    served = client.post(f"/v1/models/{job['model_id']}/predict", headers=auth,
                         json={"inputs": BLOBS["inputs"]}).get_json()
    np.testing.assert_allclose(probs, served["probabilities"], rtol=1e-6, atol=1e-6)
    assert labels.tolist() == served["labels"] == BLOBS["labels"]


def test_onnx_is_the_default_format(app: Any, client: Any, auth: dict[str, str]) -> None:
    job = train(app, client, auth, XOR, [{"units": 4}, {"units": 1}], QUICK)
    resp = client.get(f"/v1/models/{job['model_id']}/export", headers=auth)
    assert resp.status_code == 200
    (out,) = _session(resp.data).run(["outputs"], {"inputs": np.eye(2, dtype=np.float32)})
    assert out.shape == (2, 1)


def test_export_errors(app: Any, client: Any, auth: dict[str, str],
                       other_key: str) -> None:
    job = train(app, client, auth, XOR, [{"units": 4}, {"units": 1}], QUICK)
    url = f"/v1/models/{job['model_id']}/export"
    body = problem(client.get(url + "?format=pmml", headers=auth), 422)
    assert body["errors"][0]["loc"] == ["query", "format"]
    problem(client.get(url, headers={"Authorization": f"Bearer {other_key}"}), 404)
    problem(client.get("/v1/models/mdl_nope/export", headers=auth), 404)
    problem(client.get(url), 401)


def test_missing_onnx_extra_is_a_501_naming_the_install(app: Any, client: Any,
                                                        auth: dict[str, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    job = train(app, client, auth, XOR, [{"units": 4}, {"units": 1}], QUICK)
    monkeypatch.setitem(sys.modules, "onnx", None)  # what an install without the extra sees
    body = problem(client.get(f"/v1/models/{job['model_id']}/export", headers=auth), 501)
    assert "pip install 'backprop-service[onnx]'" in body["detail"]
