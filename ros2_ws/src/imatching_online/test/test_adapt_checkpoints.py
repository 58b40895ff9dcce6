"""imatching-adapt checkpoints: a run stopped anywhere (SIGKILL, SIGINT, a smaller --steps) and resumed ends
with the same weights as the run that never stopped; new runs refuse an existing output; a resume never
takes another run's checkpoint. Real adaptation: the shipped matcher on 120x80 HoloLens windows."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from banet_vo.train.checkpoints import find_latest_unit
from imatching_online.adapt_cli import checkpoint_dir, main
from imatching_online.matcher.io import load_matcher

MATCHER = Path(__file__).resolve().parents[4] / "models" / "matcher_synthetic.safetensors"
STEPS = 6


def _argv(hololens_dir: Path, out: Path, steps: int = STEPS, *extra: str) -> list[str]:
    argv = [str(hololens_dir), "--matcher", str(MATCHER), "--out", str(out), "--steps", str(steps)]
    return [*argv, "--frames", "0:12", "--width", "120", "--frame-stride", "2", "--queries", "60", *extra]


@pytest.fixture(scope="module")
def uninterrupted(hololens_dir, tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("straight") / "a.safetensors"
    assert main(_argv(hololens_dir, out)) == 0
    matcher, meta = load_matcher(out)
    assert meta["optimiser_steps"] >= 3  # the windows really train the matcher
    return matcher.state_dict(), meta


def _same_result(out: Path, uninterrupted) -> None:
    weights, meta = uninterrupted
    matcher, got = load_matcher(out)
    for key, value in matcher.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=1e-6, msg=key)
    for key in ("optimiser_steps", "window_starts", "failures", "rollbacks", "windows"):
        assert got[key] == meta[key], key


def test_stop_and_resume_with_more_steps_gives_the_uninterrupted_result(
    hololens_dir, tmp_path, uninterrupted
):
    out = tmp_path / "b.safetensors"
    assert main(_argv(hololens_dir, out, 2, "--checkpoint-every", "1")) == 0
    assert main(_argv(hololens_dir, out, STEPS, "--resume")) == 0
    _same_result(out, uninterrupted)


def test_new_run_refuses_an_existing_output_and_other_settings_never_resume(hololens_dir, tmp_path, capsys):
    out = tmp_path / "c.safetensors"
    assert main(_argv(hololens_dir, out, 1)) == 0
    capsys.readouterr()
    assert main(_argv(hololens_dir, out, 1)) == 2
    assert "--resume continues that run, --overwrite replaces it" in capsys.readouterr().err
    assert main(_argv(hololens_dir, out, 2, "--resume", "--lr", "1e-3")) == 2
    assert "other settings (lr)" in capsys.readouterr().err
    (checkpoint_dir(out) / ".step-000000009.x.tmp").mkdir()  # left by a killed writer
    assert main(_argv(hololens_dir, out, 1, "--overwrite", "--lr", "1e-3")) == 0
    assert "removed" in capsys.readouterr().err
    assert load_matcher(out)[1]["config"]["lr"] == 1e-3


def _fork(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # child: run the CLI and leave without returning into pytest
        code = 3
        try:
            code = main(argv)
        finally:
            os._exit(code)
    return pid


def _wait_for_unit(out: Path, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unit, _ = find_latest_unit(checkpoint_dir(out))
        if unit is not None and unit.step >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint {at_least} of {out} within {timeout} s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_checkpoints_and_the_resume_matches(hololens_dir, tmp_path, uninterrupted, signum):
    out = tmp_path / "d.safetensors"
    pid = _fork(_argv(hololens_dir, out, STEPS, "--checkpoint-every", "1"))
    _wait_for_unit(out, 1)
    os.kill(pid, signum)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 128 + signum)
    assert main(_argv(hololens_dir, out, STEPS, "--resume")) == 0
    _same_result(out, uninterrupted)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_matches(hololens_dir, tmp_path, uninterrupted):
    out = tmp_path / "e.safetensors"
    rng = random.Random(4)
    assert main(_argv(hololens_dir, out, 1, "--checkpoint-every", "1")) == 0
    for _ in range(3):
        pid = _fork(_argv(hololens_dir, out, STEPS, "--resume", "--checkpoint-every", "1"))
        time.sleep(rng.uniform(0.5, 2.5))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert main(_argv(hololens_dir, out, STEPS, "--resume")) == 0
    _same_result(out, uninterrupted)


def test_a_unit_a_killed_rewrite_set_aside_is_recovered_before_temporaries_are_cleared(tmp_path, capsys):
    """A SIGKILL between moving a same-step unit aside and renaming its rewrite in leaves the run's only
    copy in a `.step-N.old.*.tmp` folder, which the start's clearing of temporaries deleted."""
    import os
    from types import SimpleNamespace

    from banet_vo.train.checkpoints import list_units, write_unit
    from imatching_online.adapt_cli import _prepare_output, checkpoint_dir

    out = tmp_path / "adapted.safetensors"
    units = checkpoint_dir(out)
    write_unit(units, 4, {"state.pt": lambda p: p.write_text("windows 0-3")})
    aside = units / ".step-000000004.old.k1ll3d.tmp"
    aside.mkdir()
    os.replace(units / "step-000000004", aside / "step-000000004")
    assert _prepare_output(SimpleNamespace(out=out, resume=True, overwrite=False)) == units
    assert [step for step, _ in list_units(units)] == [4] and not aside.exists()
    assert "recovered" in capsys.readouterr().err
