"""The console entry points take SIGINT before their heavy imports (banet_vo.ros.entry): a program a script
starts in the background inherits SIGINT ignored, and a SIGINT in the seconds before rclpy.init installed
its handler (torch's import, banet-vo-run's model loading) was discarded — the node ran on until the next.
Real processes, the installed console scripts, SIGINT to the pid as a supervisor sends it, as soon as the
process has a handler for it (/proc/PID/status), which must be before torch is loaded (/proc/PID/maps)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

BIN = Path(sys.executable).parent
SIGINT_BIT = 1 << (signal.SIGINT - 1)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` from a non-interactive shell leaves it


def _catches_sigint(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & SIGINT_BIT)
    return False


def _has_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize(
    ("script", "args", "status"),
    [
        ("vo_node", [], 0),
        ("vo_lifecycle_node", [], 0),
        ("imatching_node", [], 0),
        ("banet-vo-run", ["/nonexistent/bag", "--out", "runs/never"], 130),
    ],
)
def test_a_program_started_with_sigint_ignored_takes_it_before_torch_and_ends_on_it(
    script, args, status, ros_domain_id, tmp_path
):
    exe = BIN / script
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (make setup installs the console scripts)")
    env = {**os.environ, "ROS_DOMAIN_ID": str(ros_domain_id), "ROS_LOG_DIR": str(tmp_path / "ros_log")}
    proc = subprocess.Popen(
        [str(exe), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        deadline = time.monotonic() + 30.0
        while not _catches_sigint(proc.pid):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "SIGINT never taken"
            time.sleep(0.002)
        # taken before the imports of seconds (rclpy's own handler comes only after them)
        assert not _has_torch(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # ignored, a node would wait for images for ever
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "interrupted while starting" in err
    assert "Traceback" not in err
