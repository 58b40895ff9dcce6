"""banet_vo.train.signals: the first SIGINT / SIGTERM asks for a stop, a second one exits at once with
128 + its number (130 / 143) and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from banet_vo.train.signals import StopSignals

PACKAGE = Path(__file__).resolve().parents[1]

LOOP = """
import sys, time
from banet_vo.train.signals import StopSignals
with StopSignals() as signals:
    print("ready", flush=True)
    while True:  # a long step: only the second signal ends it
        time.sleep(0.01)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_exits_with_128_plus_its_number(signum):
    stopped: BaseException | None = None
    with StopSignals() as signals:
        os.kill(os.getpid(), signum)
        time.sleep(0.01)  # delivered at the next bytecode of the main thread
        assert signals.received == signal.Signals(signum).name
        try:
            os.kill(os.getpid(), signum)
            time.sleep(1.0)
        except BaseException as exc:  # SystemExit expected; anything else fails below
            stopped = exc
    assert isinstance(stopped, SystemExit) and stopped.code == 128 + signum, repr(stopped)
    assert signal.getsignal(signum) is not signals._handle  # the previous handler is back


def test_twice_sigterm_ends_a_process_with_143_and_no_traceback():
    env = {**os.environ, "PYTHONPATH": f"{PACKAGE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
