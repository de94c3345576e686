"""The server is killed (SIGKILL) during a batch POST of observations and restarted: the store holds each
observation exactly once or not at all, with every acknowledged one present; re-sending completes it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from cim import iot
from tests.api.conftest import RAIN


def _serve(url: str, *options: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cim.cli", "serve", url, "--port", str(port), *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("cim serve did not come up")


def _times(twin) -> list:
    with twin.scene.store.engine.connect() as conn:
        return iot.observations(conn, twin.rain_id)["phenomenon_time"].tolist()


@pytest.mark.slow
def test_sigkill_during_batch_post(twin):
    h = twin.h("ingest")
    url = f"/v1.1/Datastreams({twin.rain_id})/Observations"
    small = [[{"phenomenonTime": f"2021-01-01T{b:02d}:{m:02d}:00Z", "result": float(m)} for m in range(10)]
             for b in range(3)]
    big = [{"phenomenonTime": f"2022-01-{1 + i // 1440:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00Z", "result": 1.0}
           for i in range(4000)]
    proc, base = _serve(twin.url)
    outcome: dict = {}
    try:
        for batch in small:                                   # acknowledged before the crash
            assert httpx.post(base + url, json=batch, headers=h, timeout=30).status_code == 201

        def post_big():
            try:
                outcome["status"] = httpx.post(base + url, json=big, headers=h, timeout=60).status_code
            except httpx.TransportError as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=post_big)
        sender.start()
        time.sleep(0.5)                                       # the batch is being written
        os.kill(proc.pid, signal.SIGKILL)
        sender.join(30)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = _times(twin)
    assert len(stored) == len(set(stored))                    # nothing twice
    new_big = [t for t in stored if t.year == 2022]
    assert len(new_big) in (0, len(big)), len(new_big)        # the batch is one transaction
    assert "error" in outcome, outcome                        # killed before it could answer
    assert len([t for t in stored if t.year == 2021]) == 30   # every acknowledged observation is there
    assert len([t for t in stored if t.year == 2020]) == len(RAIN)
    proc, base = _serve(twin.url)                             # restart; the client re-sends what it was not told
    try:
        r = httpx.post(base + url, json=big, headers=h, timeout=120)
        assert r.status_code == 201 and r.json()["created"] + r.json()["duplicates"] == len(big)
        again = httpx.post(base + url, json=small[0], headers=h, timeout=30).json()
        assert again["created"] == 0 and again["duplicates"] == 10
    finally:
        proc.terminate()
        proc.wait(10)
    stored = _times(twin)
    assert len(stored) == len(set(stored)) == len(RAIN) + 30 + len(big)
