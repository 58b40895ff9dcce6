"""Training loop on a tiny BA-Net and a tiny rendered dataset: learning, resume, checkpoints, DDP, config."""

from __future__ import annotations

import csv
import datetime
import os
import socket
from pathlib import Path

import numpy as np
import pypose as pp
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from banet_vo.train.checkpoints import find_latest_unit
from banet_vo.train.config import TrainConfig, load_train_config
from banet_vo.train.data import CachedPairs, load_cache, make_specs, render_cache, save_cache
from banet_vo.train.loop import train
from banet_vo.train.losses import banet_loss

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"

TINY_MODEL = dict(
    image_width=64,
    image_height=48,
    channels=8,
    num_basis=4,
    iterations=[1, 1],
    stem_channels=8,
    level2_channels=8,
    bottleneck_planes=[8, 8, 8, 8],
    decoder_channels=[8, 8, 8, 8],
    damping_hidden=8,
)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "tiny.pt"
    save_cache(render_cache(make_specs(["indoor"], 1, 0, 3, (64, 48)), progress=False), path)
    return path


def tiny_config(**changes) -> TrainConfig:
    values = dict(
        model_preset="small",
        model_overrides=TINY_MODEL,
        data={"scenes": [], "sequences_per_scene": 0},
        batch_size=2,
        steps=4,
        lr=1e-3,
        log_every=1,
        num_threads=1,
        checkpoint_every_s=1e9,
    )
    values.update(changes)
    return TrainConfig.from_dict(values)


def training_state(run_dir) -> dict:
    """The optimiser/scheduler state of the run's newest checkpoint unit."""
    unit, skipped = find_latest_unit(Path(run_dir) / "checkpoints")
    assert unit is not None and not skipped
    return torch.load(unit.file("state.pt"), weights_only=True)


def tiny_dataset(path) -> CachedPairs:
    return CachedPairs(load_cache(path), {"indoor": [1, 2]})


def _fixed_batch_loss(model, dataset) -> float:
    batch = dataset.stacked([0, 1])
    with torch.no_grad():
        out = model(batch["image_ref"], batch["image_tgt"], batch["intrinsics"])
        pose_gt = pp.mat2SE3(batch["pose_tgt_ref"].double(), check=False).float()
        loss, _ = banet_loss(
            out.poses_per_level, out.depths_per_level, pose_gt, batch["depth_ref"], depth_init=out.depth_init
        )
        return float(loss)


@pytest.mark.slow
def test_loss_decreases_on_a_fixed_batch(tiny_cache, tmp_path):
    from banet_vo.model.banet import BANet
    from banet_vo.model.checkpoint import load_banet

    data = tiny_dataset(tiny_cache)
    data.pairs = data.pairs[:2]  # one fixed batch, seen every step
    config = tiny_config(steps=30, lr=3e-3)
    torch.manual_seed(config.seed)
    before = _fixed_batch_loss(BANet(config.model_config()).eval(), data)
    result = train(config, tmp_path, dataset=data, progress=False)
    model = load_banet(result.checkpoint, "cpu")
    model = model[0] if isinstance(model, tuple) else model
    after = _fixed_batch_loss(model.eval(), data)
    assert result.step == 30 and result.skipped_steps == 0
    assert after < 0.9 * before  # measured ≈ 0.8 (the BA makes single steps noisy)


@pytest.mark.slow
def test_resume_continues_steps_optimizer_and_log(tiny_cache, tmp_path):
    from banet_vo.model.checkpoint import load_checkpoint

    data = tiny_dataset(tiny_cache)
    first = train(tiny_config(steps=3), tmp_path, dataset=data, progress=False)
    assert first.step == 3
    _, _, meta = load_checkpoint(first.checkpoint, expected_kind="banet")
    assert meta["steps"] == 3 and "code_version" in meta and "hardware" in meta and "wall_time_s" in meta
    state = training_state(tmp_path)
    assert all(int(s["step"]) == 3 for s in state["optimizer"]["state"].values())

    second = train(tiny_config(steps=5), tmp_path, resume=True, dataset=data, progress=False)
    assert second.step == 5
    state = training_state(tmp_path)
    assert all(int(s["step"]) == 5 for s in state["optimizer"]["state"].values())  # Adam moments carried
    with open(tmp_path / "log.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_resume_skips_damaged_units_and_names_them(tiny_cache, tmp_path, caplog):
    data = tiny_dataset(tiny_cache)
    with pytest.raises(ValueError, match=r"nothing consistent to resume from .*no checkpoints/step-\* unit"):
        train(tiny_config(steps=2), tmp_path, resume=True, dataset=data, progress=False)
    train(tiny_config(steps=2), tmp_path, dataset=data, progress=False)
    train(tiny_config(steps=3), tmp_path, resume=True, dataset=data, progress=False)
    units = sorted((tmp_path / "checkpoints").iterdir())
    assert [u.name for u in units] == ["step-000000002", "step-000000003"]
    state = units[1] / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated after it was written
    with caplog.at_level("WARNING"):
        result = train(tiny_config(steps=3), tmp_path, resume=True, dataset=data, progress=False)
    assert result.step == 3  # resumed at step 2, ran step 3 again
    assert any("step-000000003" in r.message and "state.pt" in r.message for r in caplog.records)
    # Damage every unit: resume refuses and says why for each.
    for unit in (tmp_path / "checkpoints").iterdir():
        (unit / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match=r"model\.safetensors has 29 bytes"):
        train(tiny_config(steps=4), tmp_path, resume=True, dataset=data, progress=False)
    # A different model config cannot resume these weights.
    train(tiny_config(steps=2), tmp_path, dataset=data, progress=False, overwrite=True)
    other = tiny_config(steps=3, model_overrides={**TINY_MODEL, "num_basis": 6})
    with pytest.raises(ValueError, match="model config"):
        train(other, tmp_path, resume=True, dataset=data, progress=False)


def test_a_gpu_runs_autocast_stays_out_of_its_checkpoints_and_they_resume_on_a_cpu(tiny_cache, tmp_path):
    """On CUDA, amp builds the model with backbone_dtype bf16; that is how the run computes, not the model:
    the checkpoint stores the configured fp32. A checkpoint that did store bf16 (older GPU runs; here a
    run configured so) resumes under an fp32 config, and load_banet runs it fp32 on a CPU."""
    from banet_vo.model.banet import BANet
    from banet_vo.model.checkpoint import load_banet, load_checkpoint
    from banet_vo.train.loop import _save

    config = tiny_config(steps=2)
    gpu_model = BANet(config.model_config().replace(backbone_dtype="bf16"))  # as train() builds it on CUDA
    optimizer = torch.optim.Adam(gpu_model.parameters())
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    state = {"step": 1, "wall_s": 1.0, "skipped": 0, "window": []}
    link = _save(tmp_path / "gpu", gpu_model, optimizer, scheduler, config, {"steps": 1}, state)
    assert load_checkpoint(link)[1]["backbone_dtype"] == "fp32"

    data = tiny_dataset(tiny_cache)
    bf16 = {**TINY_MODEL, "backbone_dtype": "bf16"}
    old = train(tiny_config(steps=1, model_overrides=bf16), tmp_path / "old", dataset=data, progress=False)
    assert load_checkpoint(old.checkpoint)[1]["backbone_dtype"] == "bf16"
    resumed = train(config, tmp_path / "old", resume=True, dataset=data, progress=False)
    assert resumed.step == 2
    assert load_banet(tmp_path / "old" / "checkpoints" / "step-000000001" / "model.safetensors").config == (
        config.model_config()
    )  # fp32 on a CPU, everything else as stored


def _ddp_worker(rank: int, world: int, port: int, cache: str, out: str, results) -> None:
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world)}
    )
    from banet_vo.model.banet import BANet

    holder = {}
    original_init = BANet.__init__

    def remember(self, *args, **kwargs):  # keep a handle on each rank's model to compare weights
        original_init(self, *args, **kwargs)
        holder["model"] = self

    BANet.__init__ = remember
    result = train(tiny_config(steps=3), out, dataset=tiny_dataset(cache), progress=False)
    flat = torch.cat([p.detach().flatten() for p in holder["model"].parameters()])
    results[rank] = (result.step, flat)


@pytest.mark.slow
def test_ddp_two_cpu_processes_stay_in_sync(tiny_cache, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_ddp_worker, args=(2, port, str(tiny_cache), str(tmp_path), results), nprocs=2, join=True)
    (step0, w0), (step1, w1) = results[0], results[1]
    assert step0 == step1 == 3
    assert torch.equal(w0, w1)  # gradients were averaged: identical replicas
    assert (tmp_path / "last.safetensors").is_file()  # written by rank 0


class _PoisonedOnRank1(torch.utils.data.Dataset):
    """The pairs of `data`, except that on rank 1 the images of the pairs fetched for step `step` are NaN
    (a corrupt pair that lands on one rank only)."""

    def __init__(self, data, rank: int, step: int, batch: int) -> None:
        self.data, self.rank, self.step, self.batch, self.fetched = data, rank, step, batch, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, k: int) -> dict:
        item = dict(self.data[k])
        self.fetched += 1
        if self.rank == 1 and (self.fetched - 1) // self.batch == self.step - 1:
            item["image_ref"] = item["image_ref"] * float("nan")
        return item


def _ddp_agreement_worker(rank: int, world: int, port: int, cache: str, out: str, case: str, results) -> None:
    """One rank of a 2-process gloo run: `case` "plateau" halves the LR at every window that does not
    improve (each rank sees its own pairs); "nan" gives rank 1 a non-finite loss at step 2. Reports the
    step, skipped steps, the LR after each scheduler step and the final weights."""
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world)}
    )
    # Initialised here (the loop reuses it) for a timeout: a collective mismatch fails in a minute.
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    from banet_vo.model.banet import BANet

    holder, lrs = {}, []
    original_init = BANet.__init__
    original_step = torch.optim.lr_scheduler.ReduceLROnPlateau.step

    def remember(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        holder["model"] = self

    def scheduler_step(self, metric, *args, **kwargs):
        original_step(self, metric, *args, **kwargs)
        lrs.append(self.optimizer.param_groups[0]["lr"])

    BANet.__init__ = remember
    torch.optim.lr_scheduler.ReduceLROnPlateau.step = scheduler_step
    data = tiny_dataset(cache)
    if case == "plateau":
        config = tiny_config(steps=8, batch_size=1, plateau_window=1, plateau_patience=0)
    else:
        config = tiny_config(steps=3, batch_size=1)
        data = _PoisonedOnRank1(data, rank, step=2, batch=1)
    result = train(config, out, dataset=data, progress=False)
    flat = torch.cat([p.detach().flatten() for p in holder["model"].parameters()])
    results[rank] = (result.step, result.skipped_steps, lrs, flat)


def _run_ddp_agreement(cache, out, case: str) -> list:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_ddp_agreement_worker, args=(2, port, str(cache), str(out), case, results), nprocs=2, join=True)
    return [results[0], results[1]]


@pytest.mark.slow
def test_ddp_ranks_take_the_same_plateau_decisions(tiny_cache, tmp_path):
    """Each rank's loss differs (its own pairs); the scheduler must see the loss averaged over the ranks,
    or one rank halves its LR where another does not and the replicas drift apart."""
    (step0, _, lrs0, w0), (step1, _, lrs1, w1) = _run_ddp_agreement(tiny_cache, tmp_path, "plateau")
    assert step0 == step1 == 8 and len(lrs0) == 8
    assert lrs0 == lrs1 and min(lrs0) < 1e-3  # the same LR at every step, and it was halved
    assert torch.equal(w0, w1)


@pytest.mark.slow
def test_ddp_a_non_finite_loss_on_one_rank_skips_the_step_on_every_rank(tiny_cache, tmp_path):
    """Rank 1's pair of step 2 is NaN: every rank skips that step before backward (skipping it on rank 1
    alone left the others in the gradient all-reduce), counts it, and the replicas stay equal."""
    (step0, skipped0, _, w0), (step1, skipped1, _, w1) = _run_ddp_agreement(tiny_cache, tmp_path, "nan")
    assert step0 == step1 == 3 and skipped0 == skipped1 == 1
    assert torch.equal(w0, w1) and torch.isfinite(w0).all()


def test_config_files_load_and_unknown_keys_fail(tmp_path):
    small = load_train_config(CONFIG_DIR / "train_small.yaml")
    assert small.model_config().name == "small" and small.num_threads == 2
    paper = load_train_config(CONFIG_DIR / "train_paper.yaml")
    assert paper.model_config().num_basis == 128
    # Stage 1 of the small recipe supervises D0 alone; stage 2 keeps D0's term (its only signal).
    stage1 = load_train_config(CONFIG_DIR / "train_small_depth0.yaml")
    assert stage1.loss.initial_depth > 0 and stage1.loss.rotation == stage1.loss.depth == 0
    assert small.loss.initial_depth > 0 and small.model_config().depth0_stop_gradient
    stage3 = load_train_config(CONFIG_DIR / "train_small_stage3.yaml")
    assert stage3.model_config().separate_depth_damping and not small.model_config().separate_depth_damping
    with pytest.raises(ValueError, match="initial_depth must be > 0"):
        TrainConfig.from_dict({"model_preset": "small", "loss": {"initial_depth": 0.0}})
    no_stop = {"model_preset": "small", "model_overrides": {"depth0_stop_gradient": False}}
    assert TrainConfig.from_dict({**no_stop, "loss": {"initial_depth": 0.0}}).loss.initial_depth == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_preset: small\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_train_config(bad)
    with pytest.raises(ValueError, match="data"):
        TrainConfig.from_dict({"data": {"scenes": ["driving"], "strides": {}}})
    with pytest.raises(ValueError, match="does not exist"):
        load_train_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="preset"):
        TrainConfig.from_dict({"model_preset": "huge"})


def test_cached_pairs_items_and_cache_errors(tiny_cache, tmp_path):
    data = tiny_dataset(tiny_cache)
    assert len(data) == 2 + 1  # 3 frames: strides 1 and 2
    item = data[0]
    assert item["image_ref"].shape == (3, 48, 64) and item["pose_tgt_ref"].shape == (4, 4)
    assert item["depth_valid"].any() and float(item["image_ref"].max()) <= 1.0
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"broken\.pt"):
        load_cache(broken)
    with pytest.raises(ValueError, match="strides"):
        CachedPairs(load_cache(tiny_cache), {"driving": [1]})


@pytest.mark.slow
def test_stop_file_and_wall_limit_end_the_run_with_a_checkpoint(tiny_cache, tmp_path):
    data = tiny_dataset(tiny_cache)
    train(tiny_config(steps=2), tmp_path, dataset=data, progress=False)
    (tmp_path / "STOP").touch()
    result = train(tiny_config(steps=50), tmp_path, resume=True, dataset=data, progress=False)
    assert result.step == 2 and result.checkpoint is not None  # stopped before any further step
    assert result.stopped_by == "STOP file"
    # docs/training.md: "touch DIR/STOP ... (--resume continues it)": the file was consumed.
    assert not (tmp_path / "STOP").exists()
    resumed = train(tiny_config(steps=3), tmp_path, resume=True, dataset=data, progress=False)
    assert resumed.step == 3 and resumed.stopped_by == ""
    (tmp_path / "STOP").touch()  # left over, e.g. touched after the run had ended
    fresh = train(tiny_config(steps=2), tmp_path, overwrite=True, dataset=data, progress=False)
    assert fresh.step == 2 and fresh.stopped_by == "" and not (tmp_path / "STOP").exists()
    limited = train(tiny_config(steps=50, max_wall_s=1e-3), tmp_path / "b", dataset=data, progress=False)
    assert limited.step < 50 and (tmp_path / "b" / "last.safetensors").is_file()


def test_init_weights_and_lr_multipliers(tiny_cache, tmp_path):
    from banet_vo.model.checkpoint import load_checkpoint

    data = tiny_dataset(tiny_cache)
    first = train(tiny_config(steps=1), tmp_path / "a", dataset=data, progress=False)
    start, _, _ = load_checkpoint(first.checkpoint)
    config = tiny_config(
        steps=1, lr=1e-3, init_weights=str(first.checkpoint), lr_multipliers={"decoder.depth_head": 10.0}
    )
    second = train(config, tmp_path / "b", dataset=data, progress=False)
    state = training_state(tmp_path / "b")
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == pytest.approx([1e-3, 1e-2])
    after, _, _ = load_checkpoint(second.checkpoint)
    # Started from the first run's weights: one small Adam step away from them, not a fresh init.
    key = "decoder.depth_head.bias"
    assert (after[key] - start[key]).abs().max() <= 1e-2 * 1.01
    with pytest.raises(ValueError, match="lr_multipliers"):
        train(
            tiny_config(steps=1, lr_multipliers={"nothing.here": 2.0}),
            tmp_path / "c",
            dataset=data,
            progress=False,
        )


def test_init_weights_from_a_shared_damping_checkpoint_into_separate_depth_damping(tiny_cache, tmp_path):
    from banet_vo.model.checkpoint import load_checkpoint

    data = tiny_dataset(tiny_cache)
    first = train(tiny_config(steps=1), tmp_path / "a", dataset=data, progress=False)
    start, _, _ = load_checkpoint(first.checkpoint)
    separate = {**TINY_MODEL, "separate_depth_damping": True}
    config = tiny_config(steps=1, lr=1e-3, model_overrides=separate, init_weights=str(first.checkpoint))
    after, new_config, _ = load_checkpoint(
        train(config, tmp_path / "b", dataset=data, progress=False).checkpoint
    )
    assert new_config["separate_depth_damping"] is True
    for key in ("ba.damping.0.net.6.weight", "ba.damping.0.net.6.bias"):
        assert start[key].shape[0] == 1 and after[key].shape[0] == 2
        # Both rows began as the shared row: one Adam step (lr 1e-3) from it.
        assert (after[key] - torch.cat([start[key], start[key]])).abs().max() <= 1e-3 * 1.01


def test_init_skip_warm_starts_all_but_a_depth_head_of_another_activation(tiny_cache, tmp_path):
    """Warm start from a softplus-head checkpoint (config without depth_activation, like run 1's) into an
    exp head: every other tensor is copied, the skipped head keeps its fresh log-depth initialisation."""
    import json

    from banet_vo.model.checkpoint import load_checkpoint, save_checkpoint

    data = tiny_dataset(tiny_cache)
    old_model = {**TINY_MODEL, "depth_activation": "softplus", "initial_depth": 3.0}
    first = train(
        tiny_config(steps=1, model_overrides=old_model), tmp_path / "a", dataset=data, progress=False
    )
    weights, old_config, meta = load_checkpoint(first.checkpoint)
    del old_config["depth_activation"]  # as written before the key existed
    old_path = save_checkpoint(tmp_path / "old.safetensors", weights, "banet", old_config, meta)
    assert "depth_activation" not in json.dumps(load_checkpoint(old_path)[1])

    new_model = {**TINY_MODEL, "depth_activation": "exp", "initial_depth": 3.5}
    with pytest.raises(ValueError, match=r"differs in \['depth_activation', 'initial_depth'\]"):
        train(
            tiny_config(steps=1, model_overrides=new_model, init_weights=str(old_path)),
            tmp_path / "b",
            dataset=data,
            progress=False,
        )
    config = tiny_config(
        steps=1,
        lr=1e-3,
        model_overrides=new_model,
        init_weights=str(old_path),
        init_skip=["decoder.depth_head"],
    )
    second = train(config, tmp_path / "c", dataset=data, progress=False)
    after, new_config, _ = load_checkpoint(second.checkpoint)
    assert new_config["depth_activation"] == "exp"
    # One Adam step (lr 1e-3) from the loaded weights, or from the fresh log-depth bias for the head.
    moved = max(
        float((after[k] - weights[k]).abs().max()) for k in weights if not k.startswith("decoder.depth")
    )
    assert moved <= 1e-3 * 1.01
    assert float(after["decoder.depth_head.bias"]) == pytest.approx(
        float(torch.log(torch.tensor(3.5))), abs=2e-3
    )
    assert abs(float(weights["decoder.depth_head.bias"]) - float(after["decoder.depth_head.bias"])) > 0.5
    with pytest.raises(ValueError, match="init_skip"):
        tiny_config(init_skip=["decoder.depth_head"])  # no init_weights to skip from
    with pytest.raises(ValueError, match=r"init_skip: no weights .* start with \['nothing'\]"):
        train(
            tiny_config(
                steps=1, model_overrides=new_model, init_weights=str(old_path), init_skip=["nothing"]
            ),
            tmp_path / "d",
            dataset=data,
            progress=False,
        )


def test_real_sequences_are_served_from_memory_with_the_same_pairs(tmp_path):
    """data.real_sequences: the pairs of a real sequence read through the frame cache equal those read from
    disk each time (real_cache_mb 0), and the second pass reads nothing from disk."""
    from banet_vo.data import CachedSequence, Frame, InMemorySequence, write_sequence
    from banet_vo.geometry import PinholeCamera
    from banet_vo.train.loop import build_dataset

    camera = PinholeCamera(50.0, 50.0, 31.5, 23.5, 64, 48)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(5):
        pose = np.eye(4)
        pose[0, 3] = 0.1 * i
        image = rng.integers(0, 255, (48, 64), dtype=np.uint8)
        frames.append(Frame(i, 0.1 * i, image, camera, np.full((48, 64), 3.0, np.float32), pose))
    path = write_sequence(InMemorySequence(frames), tmp_path / "real")
    items = {}
    for cache_mb in (0, 64):
        config = tiny_config(
            data={
                "scenes": [],
                "sequences_per_scene": 0,
                "real_sequences": [str(path)],
                "real_cache_mb": cache_mb,
            }
        )
        dataset, description = build_dataset(config, progress=False)
        assert isinstance(dataset.sequence, CachedSequence) and description["real"][0]["pairs"] == 4
        items[cache_mb] = [dataset[k] for k in range(len(dataset))]
        assert dataset.sequence.cached_bytes == (0 if cache_mb == 0 else 5 * (64 * 48 + 4 * 64 * 48))
        if cache_mb:
            dataset.sequence.source._load = None  # any further read from disk would fail
            again = [dataset[k] for k in range(len(dataset))]
            for a, b in zip(again, items[cache_mb], strict=True):
                torch.testing.assert_close(a["image_ref"], b["image_ref"])
    for a, b in zip(items[0], items[64], strict=True):
        for key in ("image_ref", "image_tgt", "depth_ref", "pose_tgt_ref", "intrinsics"):
            torch.testing.assert_close(a[key], b[key])


def test_rendering_in_worker_processes_gives_the_same_cache():
    """render_cache with 2 worker processes (spawned) equals the in-process render, in spec order."""
    specs = make_specs(["indoor", "driving"], 2, 0, 2, (64, 48))
    one = render_cache(specs, progress=False, workers=1)
    two = render_cache(specs, progress=False, workers=2)
    assert [s["seed"] for s in two["sequences"]] == [s.seed for s in specs]
    for a, b in zip(one["sequences"], two["sequences"], strict=True):
        assert a["scene"] == b["scene"] and a["seed"] == b["seed"]
        for key in ("images", "depths", "poses", "intrinsics"):
            assert torch.equal(a[key], b[key])


def test_the_gpu_recipe_is_the_xfeat_recipe_at_a_larger_batch():
    """train_small_xfeat_gpu.yaml changes only what the batch size scales (steps, plateau window) and the
    machine's knobs: same network, data, losses and learning rate as train_small_xfeat.yaml, same pairs."""
    import dataclasses

    cpu = load_train_config(CONFIG_DIR / "train_small_xfeat.yaml")
    gpu = load_train_config(CONFIG_DIR / "train_small_xfeat_gpu.yaml")
    scaled = {
        "batch_size",
        "steps",
        "plateau_window",
        "max_wall_s",
        "num_threads",
        "log_every",
        "checkpoint_every_s",
    }
    for f in dataclasses.fields(cpu):
        if f.name not in scaled:
            assert getattr(gpu, f.name) == getattr(cpu, f.name), f.name
    assert gpu.batch_size * gpu.steps == cpu.batch_size * cpu.steps  # the recipe's 80,000 pairs
    assert gpu.batch_size * gpu.plateau_window == cpu.batch_size * cpu.plateau_window


def test_the_gray_gpu_recipe_differs_from_the_gpu_recipe_in_gray_alone():
    import dataclasses

    gpu = load_train_config(CONFIG_DIR / "train_small_xfeat_gpu.yaml")
    gray = load_train_config(CONFIG_DIR / "train_small_xfeat_gpu_gray.yaml")
    assert gpu.data.gray == 0.0 and gray.data.gray == 0.2
    assert dataclasses.replace(gray, data=dataclasses.replace(gray.data, gray=0.0)) == gpu
