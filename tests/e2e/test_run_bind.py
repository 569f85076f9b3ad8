"""``make run`` (``python -m service.run``) binds loopback unless HOST says otherwise, and prints
the address it really listens on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from service.config import Settings
from service.run import ROOT, commands, listening

from .conftest import free_port


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (Linux ``/proc/net/tcp``)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, state = fields[1], fields[3]
            host, _, hexport = addr.partition(":")
            if state == "0A" and int(hexport, 16) == port:  # LISTEN
                raw = bytes.fromhex(host)
                if width == 8:
                    found.add(".".join(str(b) for b in raw[::-1]))
                else:
                    found.add(host)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
def test_make_run_binds_loopback_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HOST", "DATABASE_URL", "BROKER_URL", "REDIS_URL")}
    env.update(DATA_DIR=str(tmp_path), PORT=str(port), WEB_CONCURRENCY="1",
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "service.run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline and not line.lstrip().startswith("API"):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "service.run exited"
        assert f"http://127.0.0.1:{port}" in line, line
        for _ in range(200):
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_host_variable_and_the_printed_address() -> None:
    api = commands(Settings.from_env(), port=8123, web_workers=1)["api"]
    assert api[api.index("--bind") + 1] == "127.0.0.1:8123"
    wide = commands(Settings.from_env(), port=8123, web_workers=1, host="0.0.0.0")["api"]
    assert wide[wide.index("--bind") + 1] == "0.0.0.0:8123"
    assert "listening on 0.0.0.0:8123 (every interface" in listening("0.0.0.0", 8123)
    assert "http://127.0.0.1:8123" in listening("127.0.0.1", 8123)
    assert "http://[::1]:8123" in listening("::1", 8123)
