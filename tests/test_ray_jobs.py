"""`ray job submit` against a local head on loopback (token auth): a ray_jobs/ entry point builds a
mini challenge.

The test starts its own head with a private temp dir and free ports, and stops exactly the processes
of that head (found by the temp dir in their command line), never other Ray instances on the
machine.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import kill_ray_instance

ROOT = Path(__file__).resolve().parents[1]


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def head():
    temp = tempfile.mkdtemp(prefix="farm-ray-", dir="/tmp")
    port, dash, agent, agent_grpc, runtime, metrics = _free_ports(6)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
    cmd = [
        "ray",
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime}",
        f"--metrics-export-port={metrics}",
        f"--temp-dir={temp}",
        "--block",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield f"http://127.0.0.1:{dash}", env
    finally:
        proc.terminate()
        kill_ray_instance(temp, proc.pid)


def _submit(address, env, *entrypoint, timeout=600):
    cmd = [
        "ray",
        "job",
        "submit",
        "--address",
        address,
        "--working-dir",
        str(ROOT),
        "--runtime-env-json",
        '{"excludes": [".git/", "farm-demo/"]}',
        "--entrypoint-num-cpus",
        "0",
        "--",
        *entrypoint,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_ray_job_submit_make_challenge(head, tmp_path):
    address, env = head
    deadline = time.time() + 120
    while True:  # the job agent needs a few seconds after the head is up
        probe = _submit(address, env, sys.executable, "-c", "print('ready')", timeout=120)
        if probe.returncode == 0 and "ready" in probe.stdout:
            break
        assert time.time() < deadline, probe.stderr[-2000:]
        time.sleep(3)
    out = tmp_path / "mini"
    result = _submit(
        address,
        env,
        sys.executable,
        "ray_jobs/make_challenge.py",
        "--config",
        "tests/data/tiny-mini.yaml",
        "--out",
        str(out),
        "--store",  # never the default store in the user cache, whatever env the job gets
        str(tmp_path / "store"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"challenge: {out / 'challenge'}" in result.stdout
    assert "succeeded" in (result.stdout + result.stderr).lower()
    from farm.challenge.tree import read_challenge

    assert len(read_challenge(out / "challenge").models) == 6
