"""The imatching-train and imatching-adapt command lines, end to end on tiny inputs."""

from __future__ import annotations

import pytest
import torch
from imatching_online.matcher.network import Matcher, MatcherConfig

TINY = MatcherConfig(base_channels=8, coarse_channels=16, fine_channels=8, window_radius=2)


@pytest.mark.slow
def test_train_cli_writes_a_loadable_checkpoint_with_metadata(tmp_path):
    from imatching_online.matcher.io import load_matcher
    from imatching_online.train import main

    out = tmp_path / "m.safetensors"
    argv = ["--out", str(out), "--work-dir", str(tmp_path / "work"), "--width", "64", "--height", "48"]
    argv += ["--scenes", "1", "--val-scenes", "1", "--frames", "3", "--steps", "3", "--batch-size", "2"]
    argv += ["--queries", "16"]
    assert main(argv) == 0
    _matcher, meta = load_matcher(out)
    assert meta["steps"] == 3 and meta["data"]["image_size"] == [64, 48]
    assert set(meta["metrics_synthetic_val"]) >= {"mma@1px", "mma@2px", "mma@5px"}
    assert "cpu" in meta["hardware"]
    # --resume continues from the saved state rather than starting again.
    assert main([*argv[:-6], "--steps", "4", "--batch-size", "2", "--queries", "16", "--resume"]) == 0
    assert load_matcher(out)[1]["steps"] == 4


def test_train_cli_rejects_sizes_that_are_not_multiples_of_8(tmp_path, capsys):
    from imatching_online.train import main

    assert main(["--out", str(tmp_path / "m.safetensors"), "--width", "100"]) == 2
    assert "--width" in capsys.readouterr().err


@pytest.mark.slow
def test_adapt_cli_runs_counts_skipped_windows_and_writes_metadata(tmp_path, hololens_dir):
    from imatching_online.adapt_cli import main
    from imatching_online.matcher.io import load_matcher, save_matcher

    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    save_matcher(start, Matcher(TINY), {"steps": 0})
    out = tmp_path / "adapted.safetensors"
    argv = [str(hololens_dir), "--matcher", str(start), "--out", str(out), "--steps", "2", "--frames", "0:9"]
    argv += ["--width", "120", "--frame-stride", "2", "--queries", "60"]
    assert main(argv) == 0
    _, meta = load_matcher(out)
    assert meta["windows"] == 2 and meta["frames"] == [0, 9] and meta["image_size"] == [120, 80]
    assert meta["failures"]["windows"] == 2
    assert meta["optimiser_steps"] == meta["failures"]["successes"]  # no step without a solved window
    assert meta["base_meta"]["steps"] == 0


@pytest.mark.slow
def test_adapt_cli_runs_xfeat_at_its_default_width(tmp_path, hololens_dir):
    """--width 240 on 540x360 frames gives 240x160 for the own matcher; XFeat needs multiples of 32, so its
    working size is 256x160 (the XFeat path refused 240x160 after loading the frames)."""
    from imatching_online.adapt_cli import main
    from imatching_online.matcher.io import load_matcher

    out = tmp_path / "adapted.safetensors"
    argv = [str(hololens_dir), "--matcher", "xfeat:pretrained", "--out", str(out), "--steps", "1"]
    argv += ["--frames", "0:3", "--window", "3", "--queries", "60"]
    assert main(argv) == 0
    assert load_matcher(out)[1]["image_size"] == [256, 160]


def test_adapt_cli_rejects_bad_frames(tmp_path, hololens_dir, capsys):
    from imatching_online.adapt_cli import main
    from imatching_online.matcher.io import save_matcher

    start = tmp_path / "start.safetensors"
    save_matcher(start, Matcher(TINY), {"steps": 0})
    argv = [
        str(hololens_dir),
        "--matcher",
        str(start),
        "--out",
        str(tmp_path / "o.safetensors"),
        "--frames",
        "9:3",
    ]
    assert main(argv) == 2
    assert "--frames" in capsys.readouterr().err


def test_window_schedule_stream_visits_each_window_once_in_order_per_pass():
    from imatching_online.adapt_cli import window_schedule

    assert window_schedule([3, 1, 2], 3, "stream") == [1, 2, 3]
    assert window_schedule([3, 1, 2], 7, "stream") == [1, 2, 3, 1, 2, 3, 1]  # a last partial pass
    # shuffle: every pass is a permutation of all windows, seeded, and the seed matters.
    shuffled = window_schedule(list(range(10)), 20, "shuffle", seed=0)
    assert sorted(shuffled[:10]) == list(range(10)) and sorted(shuffled[10:]) == list(range(10))
    assert shuffled == window_schedule(list(range(10)), 20, "shuffle", seed=0)
    assert shuffled != window_schedule(list(range(10)), 20, "shuffle", seed=1)
    assert shuffled[:10] != list(range(10))
    for field, value in (("starts", []), ("steps", 0), ("order", "random")):
        kwargs = {"starts": [0, 1], "steps": 2, "order": "stream", field: value}
        with pytest.raises(ValueError, match=field):
            window_schedule(**kwargs)


def test_window_schedule_shuffle_is_the_first_runs_order():
    # The shipped matcher_*_adapted weights were made by the earlier CLI, which drew a seeded permutation
    # per pass and popped windows from its end; --order shuffle (the default) must replay that order.
    import numpy as np
    from imatching_online.adapt_cli import window_schedule

    rng, legacy, order = np.random.default_rng(0), [], []
    for _ in range(50):
        if not order:
            order = list(rng.permutation(list(range(22))))
        legacy.append(int(order.pop()))
    assert window_schedule(list(range(22)), 50, "shuffle", seed=0) == legacy


def test_adapt_cli_single_pass_in_stream_order(tmp_path, hololens_dir):
    # frames 0:10, window 5, stride 2 -> windows starting at frames 0 and 1: one pass = 2 windows, in order.
    from imatching_online.adapt_cli import main
    from imatching_online.matcher.io import load_matcher, save_matcher

    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    save_matcher(start, Matcher(TINY), {"steps": 0})
    out = tmp_path / "adapted.safetensors"
    argv = [str(hololens_dir), "--matcher", str(start), "--out", str(out), "--frames", "0:10"]
    argv += ["--width", "64", "--frame-stride", "2", "--queries", "20", "--passes", "1", "--order", "stream"]
    assert main([*argv, "--augment", "--anchor-pull", "0.2"]) == 0
    _, meta = load_matcher(out)
    assert meta["config"]["augment"] is True and meta["config"]["anchor_pull"] == 0.2
    assert meta["windows"] == 2 and meta["window_starts"] == [0, 1]
    assert meta["window_order"] == "stream" and meta["passes"] == 1
    assert meta["failures"]["windows"] == 2


def test_adapt_cli_rejects_bad_passes_and_order(tmp_path, hololens_dir, capsys):
    from imatching_online.adapt_cli import main

    base = [str(hololens_dir), "--matcher", str(tmp_path / "m"), "--out", str(tmp_path / "o")]
    assert main([*base, "--passes", "0"]) == 2
    assert "--passes" in capsys.readouterr().err
    assert main([*base, "--anchor-pull", "1.0"]) == 2
    assert "anchor_pull must be in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --steps and --passes are exclusive
        main([*base, "--passes", "1", "--steps", "3"])
    assert "not allowed with" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--order", "random"])
    assert "--order" in capsys.readouterr().err


def test_adapt_cli_help_documents_passes_and_order(capsys):
    from imatching_online.adapt_cli import build_parser

    text = build_parser().format_help()
    assert "--passes" in text and "--order" in text and "stream order" in text


@pytest.mark.slow
def test_adapt_cli_max_image_size_adapts_xfeat_at_the_size_the_front_end_runs_it(tmp_path, hololens_dir):
    """--max-image-size 540 on the 540x360 HoloLens frames: XFeat's own multiple-of-32 size (512x352, what
    banet_vo's XFeatExtractor resizes to), not an aspect-kept one; --width and it exclude each other."""
    from imatching_online.adapt_cli import main
    from imatching_online.matcher.io import XFEAT_PRETRAINED, load_matcher

    out = tmp_path / "xfeat.safetensors"
    argv = [str(hololens_dir), "--matcher", XFEAT_PRETRAINED, "--out", str(out), "--steps", "1"]
    argv += ["--frames", "0:9", "--frame-stride", "2", "--queries", "60", "--max-image-size", "540"]
    assert main(argv) == 0
    assert load_matcher(out)[1]["image_size"] == [512, 352]
    with pytest.raises(SystemExit):
        main([*argv, "--width", "288", "--overwrite"])
