"""Fault soak: SIGKILL every checkpoint writer at random instants, cut bags everywhere, stall the odometry.

The unit suite runs a few rounds of each fault in forked children (tests/…/test_train_checkpoints.py,
test_adapt_checkpoints.py, test_bag_salvage.py, test_odometry_timing.py). This script runs many more, each
writer in a fresh interpreter killed by the parent, and counts every outcome:

    .venv/bin/python -m benchmarks.fault_soak [--rounds 30] [--only units,checkpoint,train,adapt,bags,gaps]

Checks per round (any failure is printed and makes the exit status 1):
- units / checkpoint: after the kill, what a restart finds is consistent (newest unit: weights and state of
  the same step; the checkpoint file: a complete older or newer one) and the stale temps are removed;
- train: a tiny BA-Net run killed mid-run resumes from its newest consistent unit, log rows never repeat;
- adapt: imatching-adapt killed at random points, then --resume, ends with the uninterrupted weights;
- bags: a bag cut at a random byte yields only messages that were written, in order, never fewer than a
  shorter cut, or "nothing readable" (exit 2 in the CLIs);
- gaps: random stalls in a moving stream never move the published position by more than the motion
  during the failures that follow.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOLOLENS = ROOT.parent / "shared" / "data" / "hololens_000_003-052"
MATCHER = ROOT / "models" / "matcher_synthetic.safetensors"
KINDS = ("units", "checkpoint", "train", "adapt", "bags", "gaps")


# ------------------------------------------------------------------------------------------ children


def _weights(step: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    return {f"w{i}": torch.randn(256, 256, generator=gen) + step for i in range(8)}


def child(kind: str, folder: Path, start: int) -> None:
    """Write forever (until killed): units or checkpoint files whose content encodes their step."""
    import torch
    from banet_vo.model.checkpoint import save_checkpoint
    from banet_vo.train.checkpoints import write_unit

    for step in range(start + 1, start + 100_000):
        weights = _weights(step)
        if kind == "units":
            write_unit(
                folder,
                step,
                {
                    "model.safetensors": lambda p, w=weights, s=step: save_checkpoint(
                        p, w, "banet", {}, {"steps": s}
                    ),
                    "state.pt": lambda p, s=step: torch.save({"step": s}, p),
                },
            )
        else:
            save_checkpoint(folder / "model.safetensors", weights, "banet", {}, {"steps": step})


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fault_soak", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_after(proc: subprocess.Popen, ready, delay: float, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


# ------------------------------------------------------------------------------------------ soaks


def soak_writers(kind: str, rounds: int, rng: random.Random, work: Path) -> list[str]:
    import torch
    from banet_vo.model.checkpoint import load_checkpoint, remove_stale_temps
    from banet_vo.train.checkpoints import find_latest_unit

    folder = work / kind
    folder.mkdir()
    problems, step, stale = [], 0, 0
    target = folder / "model.safetensors"
    for r in range(rounds):
        proc = _spawn(["--child", kind, "--dir", str(folder), "--start", str(step)])
        if kind == "units":

            def wrote(before=step) -> bool:  # the child is past its imports and writing
                unit = find_latest_unit(folder)[0]
                return unit is not None and unit.step > before
        else:
            mtime = target.stat().st_mtime_ns if target.exists() else 0

            def wrote(before=mtime) -> bool:
                return target.exists() and target.stat().st_mtime_ns != before

        _kill_after(proc, wrote, rng.uniform(0.0, 0.3))
        stale += len(remove_stale_temps(folder))
        try:
            if kind == "units":
                unit, skipped = find_latest_unit(folder)
                assert unit is not None and not skipped, skipped
                weights, _, meta = load_checkpoint(unit.file("model.safetensors"))
                state = torch.load(unit.file("state.pt"), weights_only=True)
                assert meta["steps"] == state["step"] == unit.step
                step = unit.step
            else:
                weights, _, meta = load_checkpoint(folder / "model.safetensors")
                step = meta["steps"]
            assert torch.equal(weights["w3"], _weights(step)["w3"])
        except (AssertionError, ValueError) as exc:
            problems.append(f"{kind} round {r}: {exc}")
    print(
        f"{kind}: {rounds} kills, reached step {step}, {stale} stale temps removed, {len(problems)} problems"
    )
    return problems


def soak_train(rounds: int, rng: random.Random, work: Path) -> list[str]:
    script = (
        "import sys; from banet_vo.train.loop import train; from banet_vo.train.config import TrainConfig;"
        "from banet_vo.train.data import CachedPairs, load_cache;"
        "m=dict(image_width=64,image_height=48,channels=8,num_basis=4,iterations=[1,1],stem_channels=8,"
        "level2_channels=8,bottleneck_planes=[8]*4,decoder_channels=[8]*4,damping_hidden=8);"
        "c=TrainConfig.from_dict(dict(model_preset='small',model_overrides=m,data={'scenes':[],"
        "'sequences_per_scene':0},batch_size=2,steps=10**6,log_every=1,num_threads=1,checkpoint_every_s=1e-6));"
        "train(c, sys.argv[1], resume=sys.argv[3]=='1', progress=False,"
        "dataset=CachedPairs(load_cache(sys.argv[2]), {'indoor':[1,2]}))"
    )
    from banet_vo.train.checkpoints import find_latest_unit
    from banet_vo.train.data import make_specs, render_cache, save_cache

    cache = work / "cache.pt"
    save_cache(render_cache(make_specs(["indoor"], 1, 0, 3, (64, 48)), progress=False), cache)
    run = work / "train"
    problems = []
    for r in range(rounds):
        proc = subprocess.Popen([sys.executable, "-c", script, str(run), str(cache), "1" if r else "0"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        before = find_latest_unit(run / "checkpoints")[0]
        base = -1 if before is None else before.step
        _kill_after(proc, lambda b=base: (u := find_latest_unit(run / "checkpoints")[0]) is not None
                    and u.step > b, rng.uniform(0.0, 1.0))  # fmt: skip
        unit, skipped = find_latest_unit(run / "checkpoints")
        if unit is None or skipped:
            problems.append(f"train round {r}: newest unit {unit}, skipped {skipped}")
    print(
        f"train: {rounds} kills, newest unit at step {unit.step if unit else None}, {len(problems)} problems"
    )
    return problems


def soak_adapt(rounds: int, rng: random.Random, work: Path) -> list[str]:
    import torch
    from banet_vo.train.checkpoints import find_latest_unit
    from imatching_online.matcher.io import load_matcher

    if not HOLOLENS.is_dir():
        print(f"adapt: skipped ({HOLOLENS} not present)")
        return []
    common = ["--matcher", str(MATCHER), "--steps", "12", "--frames", "0:20", "--width", "120",
              "--frame-stride", "2", "--queries", "60"]  # fmt: skip
    adapt = [sys.executable, "-m", "imatching_online.adapt_cli", str(HOLOLENS)]
    straight, killed = work / "straight.safetensors", work / "killed.safetensors"
    subprocess.run([*adapt, *common, "--out", str(straight)], check=True, capture_output=True)
    units = killed.with_name(killed.name + ".checkpoints")
    for _ in range(rounds):
        before = find_latest_unit(units)[0]
        done_windows = -1 if before is None else before.step
        extra = ["--resume"] if before is not None else []
        proc = subprocess.Popen([*adapt, *common, "--out", str(killed), "--checkpoint-every", "1", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        _kill_after(proc, lambda d=done_windows: (u := find_latest_unit(units)[0]) is not None and u.step > d,
                    rng.uniform(0.0, 1.0))  # fmt: skip
    done = subprocess.run([*adapt, *common, "--out", str(killed), "--resume"], capture_output=True, text=True)
    if done.returncode != 0:
        return [f"adapt: final resume failed: {done.stderr[-500:]}"]
    a, b = load_matcher(straight)[0].state_dict(), load_matcher(killed)[0].state_dict()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(
        f"adapt: {rounds} kills then --resume: largest weight difference to the uninterrupted run {worst:.2e}"
    )
    return (
        [] if worst <= 1e-6 and all(torch.isfinite(b[k]).all() for k in b) else [f"adapt: differs by {worst}"]
    )


def soak_bags(rounds: int, rng: random.Random, work: Path) -> list[str]:
    from banet_vo.data.bags import IMAGE_TOPIC, BagReader, image_from_message, stamp_ns, write_bag
    from banet_vo.data.sequence import Frame
    from banet_vo.geometry import PinholeCamera

    camera = PinholeCamera(200.0, 200.0, 159.5, 119.5, 320, 240)
    gen = np.random.default_rng(0)
    frames = [Frame(i, 0.1 * i, gen.integers(0, 256, (240, 320), dtype=np.uint8), camera, None, np.eye(4))
              for i in range(60)]  # fmt: skip
    images = {round(f.timestamp * 1e9): f.image for f in frames}
    problems = []
    for storage in ("mcap", "sqlite3"):
        intact = work / f"bag_{storage}"
        write_bag(frames, intact, storage=storage)
        data_file = next(p for p in intact.iterdir() if p.name != "metadata.yaml")
        blob = data_file.read_bytes()
        results = []
        for r in range(rounds):
            cut = rng.randrange(len(blob))
            bag = work / f"cut_{storage}_{r}"
            shutil.copytree(intact, bag)
            (bag / data_file.name).write_bytes(blob[:cut])
            try:
                with BagReader(bag) as reader:
                    stamps = []
                    for _, msg in reader.messages([IMAGE_TOPIC]):
                        stamps.append(stamp_ns(msg.header))
                        if not np.array_equal(image_from_message(msg), images[stamps[-1]]):
                            problems.append(f"bags {storage} cut {cut}: image at {stamps[-1]} differs")
                    if stamps != sorted(set(stamps)):
                        problems.append(f"bags {storage} cut {cut}: stamps out of order or repeated")
                    results.append((cut, len(stamps)))
            except ValueError as exc:
                if "nothing" not in str(exc):
                    problems.append(f"bags {storage} cut {cut}: {exc}")
                results.append((cut, 0))
            shutil.rmtree(bag)
        results.sort()
        counts = [n for _, n in results]
        if counts != sorted(counts):
            problems.append(f"bags {storage}: a longer cut read fewer messages: {results}")
        print(
            f"bags {storage}: {rounds} cuts, images read from {min(counts)} to {max(counts)} of {len(frames)}"
        )
    return problems


def soak_gaps(rounds: int, rng: random.Random, work: Path) -> list[str]:
    from banet_vo.geometry import PinholeCamera
    from banet_vo.geometry.frames import body_from_optical
    from banet_vo.geometry.rigid import invert
    from banet_vo.odometry import OdometryConfig, PairEstimate, VisualOdometry

    class Truth:
        input_size = (32, 24)

        def __init__(self, poses, failing):
            self.poses, self.failing = poses, failing

        def estimate(self, ref, tgt, pose_init=None):
            T = invert(self.poses[round(tgt.stamp, 6)]) @ self.poses[round(ref.stamp, 6)]
            if round(ref.stamp, 6) in self.failing:
                T = np.full((4, 4), np.nan)
            H = np.eye(10) * 1e4
            return PairEstimate(
                T, np.full((12, 16), 5.0, np.float32), ref.camera.resized(16, 12), H, 0.01, 0.5
            )

    camera = PinholeCamera(40.0, 40.0, 31.5, 23.5, 64, 48)
    T_bc = body_from_optical()
    problems, worst = [], 0.0
    for r in range(rounds):
        stamps, t, z, failing = [], 0.0, 0.0, set()
        poses = {}
        for k in range(60):
            if k and rng.random() < 0.1:
                t += rng.choice([0.5, 2.0, 10.0, 1000.0, rng.uniform(1.0, 100.0)])  # a stall: no motion
                failing.update(round(t + 0.1 * j, 6) for j in range(rng.randrange(0, 7)))
            else:
                t += 0.1
                z += 0.2  # 2 m/s while moving
            stamps.append(round(t, 6))
            P = np.eye(4)
            P[2, 3] = z
            poses[round(t, 6)] = P
        vo = VisualOdometry(Truth(poses, failing), OdometryConfig(keyframe_mode="consecutive"))
        errors = []
        for s in stamps:
            result = vo.process(np.zeros((48, 64), np.uint8), s, camera)
            if result.has_pose:
                truth = T_bc @ poses[s] @ invert(T_bc)
                errors.append(float(np.linalg.norm(result.T_odom_base[:3, 3] - truth[:3, 3])))
        worst = max(worst, max(errors))
        # failures cost at most the motion while frames fail (6 frames x 0.2 m per stretch, 60 frames)
        if max(errors) > 0.2 * len(failing) + 1e-6:
            problems.append(
                f"gaps round {r}: position error {max(errors):.2f} m with {len(failing)} failures"
            )
    print(f"gaps: {rounds} streams with random stalls, largest position error {worst:.2f} m")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="kills / cuts / streams per fault kind")
    parser.add_argument(
        "--only", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("units", "checkpoint"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.dir, args.start)
        return 0
    logging.basicConfig(level=logging.ERROR)
    kinds = [k for k in args.only.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}")
    rng = random.Random(args.seed)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fault-soak-") as tmp:
        work = Path(tmp)
        for kind in kinds:
            started = time.monotonic()
            if kind in ("units", "checkpoint"):
                found = soak_writers(kind, args.rounds, rng, work)
            else:
                found = {"train": soak_train, "adapt": soak_adapt, "bags": soak_bags, "gaps": soak_gaps}[
                    kind
                ](args.rounds if kind != "adapt" else max(3, args.rounds // 5), rng, work)
            print(f"  ({time.monotonic() - started:.0f} s)")
            problems += found
    for line in problems:
        print("PROBLEM:", line)
    print(f"fault soak: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
