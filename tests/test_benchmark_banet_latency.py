"""benchmarks/banet_latency.py measure(): the peak-memory baseline is taken after the model's libraries
are imported (it was taken right after `import torch`, so ~55 MB of pypose etc. counted as the model's),
and the median of an even number of timings is the mean of the middle two (it took times[n // 2])."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks import banet_latency

CHILD = r"""
import json, sys, types
import torch
from benchmarks import banet_latency as b

seen = []
b._rss_mb = lambda: seen.append("banet_vo.model.banet" in sys.modules) or 0.0

class Model(torch.nn.Module):
    config = types.SimpleNamespace(image_width=8, image_height=4)
    def forward(self, ref, tgt, intr):
        return ref

def build(name):
    import banet_vo.model.banet  # what the real _build imports
    return Model(), name

b._build = build
ticks = iter([0.0, 1.0, 10.0, 13.0])  # two timed passes: 1 s and 3 s
b.time = types.SimpleNamespace(perf_counter=lambda: next(ticks))
row = b.measure("fake", 2, 1)
print(json.dumps({"seen": seen, "median": row["median_s"]}))
"""


def test_baseline_after_imports_and_true_median() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        check=True,
        cwd=banet_latency.ROOT,
    )

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["seen"][0] is True  # the baseline: model libraries already imported
    assert result["median"] == 2.0
