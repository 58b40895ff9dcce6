"""The console entry points take SIGINT before their heavy imports (banet_vo.ros.entry): a program a script
starts in the background inherits SIGINT ignored, and a SIGINT in the seconds before rclpy.init installed
its handler (torch's import, banet-vo-run's model loading) was discarded — the node ran on until the next.
Real processes, the installed console scripts, SIGINT to the pid as a supervisor sends it."""

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
# Well inside the imports: torch alone takes ~1-4 s to import on these machines.
SIGINT_AFTER_S = 0.3


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` from a non-interactive shell leaves it


@pytest.mark.parametrize(
    ("script", "args", "status"),
    [
        ("vo_node", [], 0),
        ("vo_lifecycle_node", [], 0),
        ("imatching_node", [], 0),
        ("banet-vo-run", ["/nonexistent/bag", "--out", "runs/never"], 130),
    ],
)
def test_a_sigint_during_the_imports_of_a_program_started_with_sigint_ignored_ends_it(
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
        time.sleep(SIGINT_AFTER_S)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # ignored, a node would wait for images for ever
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "interrupted while starting" in err
    assert "Traceback" not in err
