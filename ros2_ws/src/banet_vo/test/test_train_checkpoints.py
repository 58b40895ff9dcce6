"""Checkpoint units (banet_vo.train.checkpoints), stale temp files and non-finite weights
(banet_vo.model.checkpoint), and the training loop under faults: SIGKILL at random points of real saves,
SIGINT / SIGTERM during training, a new run into an old run's directory.

Writers are killed in forked children (torch is already imported here, so a kill loop costs milliseconds
per round, not a new interpreter); each round then checks what a restarted process would find.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from banet_vo.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    remove_stale_temps,
    save_checkpoint,
)
from banet_vo.train.checkpoints import UnitError, find_latest_unit, list_units, read_unit, write_unit
from banet_vo.train.config import TrainConfig
from banet_vo.train.data import CachedPairs, load_cache, make_specs, render_cache, save_cache
from banet_vo.train.loop import train

# A state large enough that a save takes milliseconds (kills land inside it), small enough for a loop.
WEIGHTS = {f"layer{i}.weight": torch.randn(256, 256) for i in range(8)}


def _writers(step: int) -> dict:
    weights = {k: v + step for k, v in WEIGHTS.items()}
    state = {"step": step, "moments": {k: v * 0.5 for k, v in weights.items()}}
    return {
        "model.safetensors": lambda p: save_checkpoint(p, weights, "banet", {"tiny": 1}, {"steps": step}),
        "state.pt": lambda p: torch.save(state, p),
    }


def _check_unit(unit) -> None:
    """What resume requires: weights and state load, and both say the unit's step."""
    weights, _, meta = load_checkpoint(unit.file("model.safetensors"))
    state = torch.load(unit.file("state.pt"), weights_only=True)
    assert meta["steps"] == state["step"] == unit.step
    assert torch.equal(weights["layer0.weight"], WEIGHTS["layer0.weight"] + unit.step)
    assert torch.equal(state["moments"]["layer7.weight"], weights["layer7.weight"] * 0.5)


TINY_MODEL = dict(
    image_width=64, image_height=48, channels=8, num_basis=4, iterations=[1, 1], stem_channels=8,
    level2_channels=8, bottleneck_planes=[8, 8, 8, 8], decoder_channels=[8, 8, 8, 8], damping_hidden=8,
)  # fmt: skip


def tiny_config(**changes) -> TrainConfig:
    """The tiny BA-Net of test_train_loop (a step takes well under a second on one CPU thread)."""
    values = dict(
        model_preset="small", model_overrides=TINY_MODEL, data={"scenes": [], "sequences_per_scene": 0},
        batch_size=2, steps=4, lr=1e-3, log_every=1, num_threads=1, checkpoint_every_s=1e9,
    )  # fmt: skip
    values.update(changes)
    return TrainConfig.from_dict(values)


def _newest_step(run: Path) -> int:
    unit, _ = find_latest_unit(run / "checkpoints")
    return -1 if unit is None else unit.step


# --------------------------------------------------------------------------------------- units


def test_unit_round_trip_keeps_the_newest_and_detects_damage(tmp_path):
    for step in (1, 2, 3):
        unit = write_unit(tmp_path, step, _writers(step), info={"note": "x"}, keep=2)
    assert [s for s, _ in list_units(tmp_path)] == [3, 2]
    assert unit.manifest["info"] == {"note": "x"}
    _check_unit(read_unit(unit.path))
    # damage after writing: one flipped byte, same size
    data = bytearray(unit.file("state.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    unit.file("state.pt").write_bytes(bytes(data))
    with pytest.raises(UnitError, match=r"state\.pt does not match its SHA-256"):
        read_unit(unit.path)
    latest, skipped = find_latest_unit(tmp_path)
    assert latest.step == 2 and len(skipped) == 1 and "step-000000003" in skipped[0]
    # the same step written again replaces the damaged unit
    write_unit(tmp_path, 3, _writers(3))
    assert find_latest_unit(tmp_path)[0].step == 3
    (unit.path / "manifest.json").unlink()
    with pytest.raises(UnitError, match=r"no manifest\.json"):
        read_unit(unit.path)
    with pytest.raises(ValueError):
        write_unit(tmp_path, 4, {"manifest.json": lambda p: None})


def test_retention_keeps_the_newest_consistent_units_not_a_damaged_newer_one(tmp_path):
    """Resumed from step 100 because step 200 was damaged, the run saves step 150: 150 and 100 are the
    units a later resume can use, so those stay and the damaged 200 goes."""
    for step in (100, 200):
        write_unit(tmp_path, step, _writers(step), keep=2)
    damaged = tmp_path / "step-000000200" / "state.pt"
    damaged.write_bytes(damaged.read_bytes()[:100])
    write_unit(tmp_path, 150, _writers(150), keep=2)
    assert [s for s, _ in list_units(tmp_path)] == [150, 100]
    for unit in (read_unit(p) for _, p in list_units(tmp_path)):
        _check_unit(unit)
    write_unit(tmp_path, 160, _writers(160), keep=2)  # consistent units beyond keep still go, oldest first
    assert [s for s, _ in list_units(tmp_path)] == [160, 150]


def test_a_failing_writer_leaves_no_unit_and_no_temp(tmp_path):
    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_unit(tmp_path, 7, {"model.safetensors": broken})
    assert list(tmp_path.iterdir()) == []


def _kill_during(target, delay_s: float) -> int:
    """Fork; the child runs target() and exits 0; the parent SIGKILLs it after delay_s. Returns the exit
    signal (SIGKILL) or 0 when the child finished first."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            # A forked child hangs in its first parallel torch op when the parent had started intra-op
            # threads (an earlier test may have): stay single-threaded here.
            torch.set_num_threads(1)
            target()
        except BaseException:
            code = 3
        os._exit(code)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        assert os.WEXITSTATUS(status) == 0, "the writer failed on its own"
        return 0
    return os.WTERMSIG(status)


def _unit_kill_rounds(root: Path, rounds: int, seed: int) -> dict:
    rng = random.Random(seed)
    step = 0
    seen = {"killed": 0, "stale_removed": 0, "skipped": 0}

    for _ in range(rounds):
        start = step

        def write_forever(start=start) -> None:
            for k in range(start + 1, start + 1000):
                write_unit(root, k, _writers(k), keep=2)

        if _kill_during(write_forever, rng.uniform(0.0, 0.15)) == signal.SIGKILL:
            seen["killed"] += 1
        # what a restarted process does: clear temps, take the newest consistent unit
        seen["stale_removed"] += len(remove_stale_temps(root))
        assert not any(p.name.endswith(".tmp") for p in root.iterdir())
        unit, skipped = find_latest_unit(root)
        seen["skipped"] += len(skipped)
        assert not skipped, skipped  # a kill never leaves a damaged unit under a real name
        if unit is not None:
            _check_unit(unit)
            assert unit.step >= step
            step = unit.step
    return seen


def test_sigkill_at_random_points_of_unit_writes_never_leaves_an_inconsistent_checkpoint(tmp_path):
    seen = _unit_kill_rounds(tmp_path, rounds=8, seed=0)
    assert seen["killed"] >= 6  # the kills did land mid-loop


@pytest.mark.slow
def test_sigkill_soak_of_unit_writes(tmp_path):
    seen = _unit_kill_rounds(tmp_path, rounds=60, seed=1)
    assert seen["killed"] >= 50
    # On a loaded machine a kill may land between writes in every one of 60 rounds; go on (bounded)
    # until one has landed inside a write, so the soak is never vacuous.
    extra = 0
    while seen["stale_removed"] == 0 and extra < 10:
        seen = {k: seen[k] + v for k, v in _unit_kill_rounds(tmp_path, rounds=20, seed=2 + extra).items()}
        extra += 1
    assert seen["stale_removed"] > 0


def test_sigkill_during_save_checkpoint_leaves_the_old_file_or_the_new(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, WEIGHTS, "banet", {}, {"steps": 0})
    rng = random.Random(2)
    stale = 0
    round_ = 0
    # 8 rounds, then (bounded) more until a kill has landed inside a save: on a loaded machine all 8
    # can land between saves, which would leave the test vacuous.
    while round_ < 8 or (stale == 0 and round_ < 40):

        def overwrite(round_=round_) -> None:
            for k in range(50):
                step = round_ * 100 + k + 1
                shifted = {key: v + step for key, v in WEIGHTS.items()}
                save_checkpoint(path, shifted, "banet", {}, {"steps": step})

        _kill_during(overwrite, rng.uniform(0.0, 0.1))
        weights, _, meta = load_checkpoint(path)  # always a complete file under the real name
        assert torch.equal(weights["layer3.weight"], WEIGHTS["layer3.weight"] + meta["steps"])
        stale += len(remove_stale_temps(tmp_path, "model.safetensors"))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
        round_ += 1
    assert stale >= 1  # some kills did land inside a save


def test_remove_stale_temps_only_touches_temporaries(tmp_path):
    (tmp_path / ".a.safetensors.x1.tmp").write_bytes(b"")
    (tmp_path / ".b.safetensors.x2.tmp").write_bytes(b"")
    (tmp_path / ".step-000000001.abc.tmp").mkdir()
    (tmp_path / "a.safetensors").write_bytes(b"keep")
    (tmp_path / "notes.tmp").write_bytes(b"keep: not hidden, not ours")
    removed = remove_stale_temps(tmp_path, "a.safetensors")
    assert [p.name for p in removed] == [".a.safetensors.x1.tmp"]
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == [".b.safetensors.x2.tmp", ".step-000000001.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "notes.tmp"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    weights = {k: v.clone() for k, v in WEIGHTS.items()}
    weights["layer5.weight"][3, 4] = bad
    weights["steps"] = torch.tensor([1, 2])  # integer tensors cannot hold NaN: not checked
    path = save_checkpoint(tmp_path / "bad.safetensors", weights, "banet", {}, {})
    with pytest.raises(CheckpointError, match=r"non-finite weights .* layer5\.weight \(1 of 65536 values\)"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "tiny.pt"
    save_cache(render_cache(make_specs(["indoor"], 1, 0, 3, (64, 48)), progress=False), path)
    return CachedPairs(load_cache(path), {"indoor": [1, 2]})


def _logged_steps(run: Path) -> list[int]:
    if not (run / "log.csv").is_file():
        return []
    with open(run / "log.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def test_new_run_refuses_an_existing_run_unless_overwrite(tiny_data, tmp_path):
    train(tiny_config(steps=1), tmp_path, dataset=tiny_data, progress=False)
    (tmp_path / "checkpoints" / ".step-000000009.abc.tmp").mkdir()  # left by a killed writer
    (tmp_path / ".last.safetensors.123.tmp").write_bytes(b"")
    with pytest.raises(ValueError, match=r"already holds a training run .*--overwrite replaces it"):
        train(tiny_config(steps=1), tmp_path, dataset=tiny_data, progress=False)
    assert not (tmp_path / ".last.safetensors.123.tmp").exists()  # stale temps go even then
    assert not (tmp_path / "checkpoints" / ".step-000000009.abc.tmp").exists()
    result = train(tiny_config(steps=2), tmp_path, dataset=tiny_data, progress=False, overwrite=True)
    assert result.step == 2 and _logged_steps(tmp_path) == [1, 2]
    assert [s for s, _ in list_units(tmp_path / "checkpoints")] == [2]
    assert load_checkpoint(tmp_path / "last.safetensors")[2]["steps"] == 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_training_writes_a_final_checkpoint_that_resumes(tiny_data, tmp_path, signum):
    run = tmp_path / "run"

    def long_run() -> None:
        result = train(tiny_config(steps=100_000), run, dataset=tiny_data, progress=False)
        assert result.stopped_by == signal.Signals(signum).name
        assert result.step < 100_000

    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            long_run()
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + 60
    while len(_logged_steps(run)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pid, signum)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    unit, _ = find_latest_unit(run / "checkpoints")
    logged = _logged_steps(run)
    assert unit is not None and unit.step == logged[-1] >= 2  # nothing trained after the checkpoint
    resumed = train(tiny_config(steps=unit.step + 1), run, resume=True, dataset=tiny_data, progress=False)
    assert resumed.step == unit.step + 1 and _logged_steps(run) == list(range(1, unit.step + 2))


def test_sigkill_during_training_resumes_from_the_newest_consistent_unit(tiny_data, tmp_path):
    """Checkpoint every step, kill at random instants: every restart resumes, and the log never holds a
    step twice (rows past the resumed checkpoint are dropped)."""
    run = tmp_path / "run"
    rng = random.Random(3)
    config = tiny_config(steps=100_000, checkpoint_every_s=1e-6)
    train(tiny_config(steps=1), run, dataset=tiny_data, progress=False)
    for _ in range(3):
        before = _newest_step(run)

        def more() -> None:
            train(config, run, resume=True, dataset=tiny_data, progress=False)

        pid = os.fork()
        if pid == 0:
            try:
                more()
            finally:
                os._exit(0)
        deadline = time.monotonic() + 60
        while _newest_step(run) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        resumed = train(
            tiny_config(steps=_newest_step(run) + 1),
            run,
            resume=True,
            dataset=tiny_data,
            progress=False,
        )
        steps = _logged_steps(run)
        assert steps == list(range(1, resumed.step + 1))


def test_resume_drops_log_rows_past_the_checkpoint_and_a_partial_last_line(tiny_data, tmp_path):
    train(tiny_config(steps=2), tmp_path, dataset=tiny_data, progress=False)
    with open(tmp_path / "log.csv", "a") as f:
        f.write("3,1.0,0.001,0.5,0.1,0.1,0.1,0\n1")  # a row past the checkpoint; "1" of a row cut by a kill
    train(tiny_config(steps=3), tmp_path, resume=True, dataset=tiny_data, progress=False)
    assert _logged_steps(tmp_path) == [1, 2, 3]
