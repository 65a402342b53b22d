"""`ray job submit` against a local head on loopback, as README.md ("Run on a Ray cluster") and
ray_jobs/submit_example.sh do it: token auth (RAY_AUTH_MODE=token on the head and the client), the
job submitted from the repository root with ray_jobs/runtime_env.yaml, its --out and --store in a
shared folder (on one machine, any folder), its summary fetched back with `ray job logs`.

The test starts its own head with a private temp dir and free ports, and stops exactly the processes
of that head (found by the temp dir in their command line), never other Ray instances on the
machine.
"""

import os
import re
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


def _ray(env, *args, timeout=600):
    """A ``ray`` CLI call from the repository root, where runtime_env.yaml's working_dir points."""
    cmd = ["ray", *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _submit(address, env, *entrypoint, submission_id=None, timeout=600):
    named = ["--submission-id", submission_id] if submission_id else []
    return _ray(
        env,
        *("job", "submit", "--address", address, "--runtime-env", "ray_jobs/runtime_env.yaml"),
        *named,
        *("--entrypoint-num-cpus", "0", "--", *entrypoint),
        timeout=timeout,
    )


def test_ray_job_submit_make_challenge(head, tmp_path):
    address, env = head
    deadline = time.time() + 120
    while True:  # the job agent needs a few seconds after the head is up
        probe = _submit(address, env, sys.executable, "-c", "print('ready')", timeout=120)
        if probe.returncode == 0 and "ready" in probe.stdout:
            break
        assert time.time() < deadline, probe.stderr[-2000:]
        time.sleep(3)
    shared = tmp_path / "shared"  # what $SHARED is to submit_example.sh: every node mounts it
    out, store = shared / "mini", shared / "store"
    job_id = f"farm-test-{os.getpid()}-{int(time.time())}"
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
        str(store),
        submission_id=job_id,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"challenge: {out / 'challenge'}" in result.stdout
    assert "succeeded" in (result.stdout + result.stderr).lower()
    # the results, fetched as README.md says: the summary from the job's log, the files from --out
    logs = _ray(env, "job", "logs", "--address", address, job_id, timeout=120)
    assert logs.returncode == 0, logs.stderr[-2000:]
    assert f"challenge: {out / 'challenge'}" in logs.stdout
    assert re.search(rf"^store:\s+{re.escape(str(store))}$", logs.stdout, re.M), logs.stdout[-2000:]
    assert re.search(r"^jobs: \d+ run, \d+ reused$", logs.stdout, re.M), logs.stdout[-2000:]
    from farm.challenge.tree import read_challenge
    from farm.store.store import Store

    assert len(read_challenge(out / "challenge").models) == 6
    assert (out / "answers").is_dir()
    assert Store(store, create=False).keys()
