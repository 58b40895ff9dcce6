"""banet_vo.train.config: reserved validation clips refused, numbers as YAML spells them and finite only,
and the training CLI's bad input answered with one line and exit status 2."""

from __future__ import annotations

import pytest
from banet_vo.train import cli
from banet_vo.train.config import DataConfig, TrainConfig, load_train_config
from banet_vo.train.losses import LossWeights

TINY_MODEL = dict(
    image_width=64, image_height=48, channels=8, num_basis=4, iterations=[1, 1], stem_channels=8,
    level2_channels=8, bottleneck_planes=[8, 8, 8, 8], decoder_channels=[8, 8, 8, 8], damping_hidden=8,
)  # fmt: skip


def _data(*real: str) -> dict:
    return {"scenes": [], "sequences_per_scene": 0, "real_sequences": list(real)}


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("../shared/data/hololens_000_003-199", "hololens_000_003-199, reserved for validation"),
        ("/data/hololens_000_003-052@0-20", "hololens_000_003-052, reserved for validation"),
        ("../shared/data/kitti_odom06_000-050/", "KITTI 06 is a validation clip only"),
        ("../shared/data/kitti_odom07_000-159", "frames 120 and later of kitti_odom07_000-159 are held out"),
        ("../shared/data/kitti_odom07_000-159@100-159", "train on ../shared/data/kitti_odom07_000-159@0-119"),
        ("../shared/data/kitti_odom07_000-159@0-120", "held out"),
    ],
)
def test_the_labels_of_reserved_validation_clips_are_refused(spec, rule):
    with pytest.raises(ValueError, match=rule):
        DataConfig(**_data(spec))


def test_reserved_clips_are_found_through_a_link(tmp_path):
    clip = tmp_path / "hololens_000_003-199"
    clip.mkdir()
    (tmp_path / "my_clip").symlink_to(clip)
    with pytest.raises(ValueError, match="hololens_000_003-199, reserved"):
        DataConfig(**_data(str(tmp_path / "my_clip")))


def test_allowed_clips_and_the_kitti07_training_part_pass():
    data = DataConfig(
        **_data(
            "../shared/data/kitti_odom07_000-159@0-119",
            "../shared/data/kitti_odom07_000-159@10-50",
            "../shared/data/tartanair_hospital_000-188",
        )
    )
    assert len(data.real_sequences) == 3


def test_yaml_scientific_notation_is_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    # YAML 1.1 (PyYAML): 1e-3 and 5e-6 without a dot are strings; they must be read as the numbers.
    path.write_text(
        "model_preset: small\nlr: 1e-3\nmin_lr: 5e-6\nloss: {rotation: 2e1}\ndata: {zoom_max: 1e0}\n"
    )
    config = load_train_config(path)
    assert config.lr == 0.001 and isinstance(config.lr, float) and config.min_lr == 5e-6
    assert config.loss.rotation == 20.0 and config.data.zoom_max == 1.0


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"lr": "fast"}, "lr must be a number"),
        ({"lr": True}, "lr must be a number"),
        ({"lr": float("inf")}, "lr must be a finite number"),
        ({"grad_clip": float("nan")}, "grad_clip must be a finite number"),
        ({"max_wall_s": float("nan")}, "max_wall_s must be a finite number"),
        ({"max_wall_s": float("inf")}, "max_wall_s must be a finite number"),
        ({"lr_multipliers": {"decoder": float("inf")}}, "lr_multipliers"),
        ({"lr_multipliers": {"": 2.0}}, "non-empty name prefixes"),
        ({"data": {"source_weights": [1.0, float("inf")]}}, "source_weights must be a finite number"),
        ({"data": {"brightness": float("nan")}}, "brightness must be a finite number"),
        ({"loss": {"depth": float("nan")}}, "LossWeights.depth must be a finite number"),
    ],
)
def test_non_numbers_and_non_finite_numbers_are_refused(changes, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig.from_dict({"model_preset": "small", **changes})


def test_loss_weights_take_numbers_only():
    with pytest.raises(ValueError, match=r"LossWeights\.rotation must be a number"):
        LossWeights(rotation="a lot")


def _main(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main([*argv, "--quiet"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must hold a mapping, not a list"),
        ("model_preset: small\nmodel_overrides: [1]\n", "model_overrides must be a mapping"),
        ("model_preset: small\nmodel_overrides: {no_such_field: 1}\n", "unknown keys ['no_such_field']"),
        ("model_preset: small\ndata: {scenes: 5}\n", "a value of the wrong kind"),
        ("model_preset: small\nlr: .inf\n", "lr must be a finite number"),
    ],
)
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, capsys, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    code, err = _main(capsys, str(config), "--out", str(tmp_path / "run"))
    assert code == 2 and message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
