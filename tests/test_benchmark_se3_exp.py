"""benchmarks.se3_exp_latency: both pose updates timed in one run, the host syncs counted, nothing left
patched."""

from __future__ import annotations

import pytest
from banet_vo.geometry.se3 import perturb_left
from banet_vo.model import ba_layer

from benchmarks import se3_exp_latency


def test_measure_counts_pyposes_syncs_and_none_in_the_branch_free_update():
    row = se3_exp_latency.measure("small", "cpu", warmup=0, repeats=1)
    assert row["nonzero"]["pypose"] > 0 and row["nonzero"]["branch_free"] == 0
    assert row["aten_calls"]["branch_free"] < row["aten_calls"]["pypose"]
    assert all(t > 0 for t in row["median_s"].values())
    assert row["ratio"] == pytest.approx(row["median_s"]["branch_free"] / row["median_s"]["pypose"])
    assert ba_layer.perturb_left is perturb_left  # the model is left as it was
    assert "| small 128x96 | cpu," in se3_exp_latency.table([row])


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--repeats", "0"], "--repeats must be >= 1"), (["--threads", "-1"], "--threads >= 0")],
)
def test_bad_arguments_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        se3_exp_latency.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.gpu
def test_the_branch_free_update_saves_host_syncs_on_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine (torch.cuda.is_available() is False)")
    row = se3_exp_latency.measure("small", "cuda", warmup=1, repeats=1)
    syncs = row["cuda_syncs"]
    print(f"host syncs per pair: pypose {syncs['pypose']}, branch-free {syncs['branch_free']}")
    assert syncs["pypose"] >= row["nonzero"]["pypose"]  # every nonzero waits for the device
    assert syncs["branch_free"] <= syncs["pypose"] - row["nonzero"]["pypose"]
