"""The run directory of banet-vo-train: an overwrite that fails on its inputs leaves the old run, weights that
are not finite are never saved, and a bad --out or sequence is a one-line error with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from banet_vo.model.checkpoint import load_checkpoint
from banet_vo.train import cli
from banet_vo.train.checkpoints import list_units
from banet_vo.train.config import TrainConfig
from banet_vo.train.data import make_specs, render_cache, save_cache
from banet_vo.train.loop import TrainingDivergedError, train

TINY_MODEL = dict(
    image_width=64, image_height=48, channels=8, num_basis=4, iterations=[1, 1], stem_channels=8,
    level2_channels=8, bottleneck_planes=[8, 8, 8, 8], decoder_channels=[8, 8, 8, 8], damping_hidden=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache") / "tiny.pt"
    save_cache(render_cache(make_specs(["indoor"], 1, 0, 3, (64, 48)), progress=False, workers=1), path)
    return path


def tiny_config(cache: Path, **changes) -> TrainConfig:
    """The tiny BA-Net on the cached scene, as a YAML config would give it."""
    values = dict(
        model_preset="small", model_overrides=TINY_MODEL, batch_size=2, steps=2, lr=1e-3, log_every=1,
        num_threads=1, checkpoint_every_s=1e9,
        data={"scenes": ["indoor"], "sequences_per_scene": 1, "frames_per_sequence": 3, "cache": str(cache),
              "strides": {"indoor": [1, 2]}},
    )  # fmt: skip
    values.update(changes)
    return TrainConfig.from_dict(values)


def _run_files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"lr_multipliers": {"decodr": 10.0}}, "no parameter names start with"),
        ({"init_weights": "/nowhere/weights.safetensors"}, "does not exist"),
        ({"data": {"scenes": [], "real_sequences": ["/nowhere/clip"]}}, "does not exist"),
    ],
)
def test_an_overwrite_whose_inputs_fail_leaves_the_old_run(tiny_cache, tmp_path, changes, error):
    train(tiny_config(tiny_cache), tmp_path, progress=False)
    (tmp_path / "STOP").touch()
    before = _run_files(tmp_path)
    with pytest.raises(ValueError, match=error):
        train(tiny_config(tiny_cache, **changes), tmp_path, progress=False, overwrite=True)
    assert _run_files(tmp_path) == before


def test_an_overwrite_replaces_the_run_once_its_inputs_check_out(tiny_cache, tmp_path):
    train(tiny_config(tiny_cache, steps=3), tmp_path, progress=False)
    (tmp_path / "STOP").touch()
    result = train(tiny_config(tiny_cache, steps=1), tmp_path, progress=False, overwrite=True)
    assert result.step == 1 and [s for s, _ in list_units(tmp_path / "checkpoints")] == [1]
    assert not (tmp_path / "STOP").exists()


def _poison_after_steps(monkeypatch, steps: int) -> None:
    """Adam steps after the first ``steps`` leave a NaN in the first parameter (a diverging run whose loss
    still reads finite at the step that breaks it)."""
    real_step = torch.optim.Adam.step
    count = [0]

    def step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        count[0] += 1
        if count[0] > steps:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)


def test_non_finite_weights_stop_the_run_without_writing_a_checkpoint(tiny_cache, tmp_path, monkeypatch):
    train(tiny_config(tiny_cache, steps=1), tmp_path, progress=False)
    _poison_after_steps(monkeypatch, 0)
    with pytest.raises(TrainingDivergedError, match=r"step 3: the weights are not finite \(NaN or inf in "):
        train(tiny_config(tiny_cache, steps=3), tmp_path, resume=True, progress=False)
    assert [s for s, _ in list_units(tmp_path / "checkpoints")] == [1]  # the last good unit, untouched
    assert load_checkpoint(tmp_path / "last.safetensors")[2]["steps"] == 1
    monkeypatch.undo()
    assert train(tiny_config(tiny_cache, steps=2), tmp_path, resume=True, progress=False).step == 2


def _config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_cli_says_a_diverged_run_in_one_line_with_exit_1(tiny_cache, tmp_path, capsys, monkeypatch):
    _poison_after_steps(monkeypatch, 0)
    config = _config_file(
        tmp_path,
        f"model_preset: small\nmodel_overrides: {TINY_MODEL}\nbatch_size: 2\nsteps: 2\nnum_threads: 1\n"
        f"data: {{scenes: [indoor], sequences_per_scene: 1, frames_per_sequence: 3, cache: {tiny_cache}, "
        "strides: {indoor: [1, 2]}}\n",
    )
    code = cli.main([config, "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "the weights are not finite" in err[-1] and "Traceback" not in "".join(err)


def test_cli_out_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    code = cli.main([_config_file(tmp_path, "model_preset: small\n"), "--out", str(tmp_path / "afile")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        f"banet-vo-train: error: the run directory {tmp_path / 'afile'} is a file, not a folder"
    ]


def test_cli_missing_sequence_folder_is_one_line_and_exit_2(tmp_path, capsys):
    config = _config_file(
        tmp_path, f"model_preset: small\ndata: {{scenes: [], real_sequences: [{tmp_path}/gone]}}\n"
    )
    code = cli.main([config, "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].endswith("gone' does not exist")
