from pathlib import Path
from typing import Any

from service import auth, db


def test_rate_limit_is_per_key_and_answers_429_problem(database_url: str,
                                                      tmp_path: Path) -> None:
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "filesystem://", "rate_limit": "3 per minute"})
    with db.session_scope() as s:
        first, second = auth.create_key(s, "rl-a"), auth.create_key(s, "rl-b")
    client: Any = app.test_client()
    a = {"Authorization": f"Bearer {first}"}
    assert [client.get("/v1/datasets", headers=a).status_code for _ in range(3)] == [200] * 3
    r = client.get("/v1/jobs", headers=a)
    assert r.status_code == 429
    assert r.content_type == "application/problem+json"
    assert r.json["status"] == 429 and "RATE_LIMIT" in r.json["detail"]
    assert int(r.headers["Retry-After"]) > 0
    # another key has its own budget; operational endpoints are not limited
    assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {second}"}
                      ).status_code == 200
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
