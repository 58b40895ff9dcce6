#!/usr/bin/env bash
# The one prepared GPU check: CUDA tests, BA-Net per-pair latency and peak memory of both presets, the
# node at 30 Hz, the real-clips table (KITTI 06) and the time per frame by stage on the GPU. Each step has
# its own time limit (under 9 minutes in all); a step that fails or runs out of time is recorded and the
# next one runs.
#
#   bash benchmarks/device_check.sh             # full on CUDA; reduced CPU smoke when there is no CUDA
#   bash benchmarks/device_check.sh --cpu-smoke # reduced mode on the CPU (about a minute)
#   bash benchmarks/device_check.sh --cuda      # full mode (fails where there is no CUDA)
#   bash benchmarks/device_check.sh --dry-run   # print the steps of the mode it would run, run nothing
#   bash benchmarks/device_check.sh --only pair_latency,node_30hz   # some steps only
#
# Figures go to $OUT when it is set (the device machine), else device_out/: summary.md (one line per
# step, then the figures), device_check.log (every step's output), latency.json, vo_latency.md,
# real_clips.md, frame_profile.md, env.txt: at most 8 files, as the device machine returns.
# Python: .venv/bin/python when present, else python3 (the device image's, which has torch and
# opencv but not every dependency: pure-Python wheels in .whl/ are installed to /tmp/site first, and a
# step whose imports are missing fails with the module's name). Exit status: the number of failed steps
# (0 in dry-run mode).
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=auto
DRY=0
ONLY=""
while [ $# -gt 0 ]; do
  arg=$1
  shift
  case "$arg" in
    --only) ONLY=",${1:-},"; shift ;;
    --cpu-smoke) MODE=cpu ;;
    --cuda) MODE=cuda ;;
    --dry-run) DRY=1 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "device_check: unknown option $arg (--cpu-smoke, --cuda, --dry-run)" >&2; exit 2 ;;
  esac
done

OUT_DIR="${OUT:-device_out}"
PY="${PY:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [ -d .whl ] && [ "$DRY" = 0 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The packages' sources, for a Python where they are not installed (the device image).
export PYTHONPATH="$PWD:$PWD/ros2_ws/src/banet_vo:$PWD/ros2_ws/src/imatching_online${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((1 + $$ % 100))}"

if [ "$MODE" = auto ]; then
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    MODE=cuda
  else
    MODE=cpu
  fi
fi
SUMMARY="$OUT_DIR/summary.md"
LOG="$OUT_DIR/device_check.log"
if [ "$DRY" = 1 ]; then
  echo "device_check: $MODE mode, output to $OUT_DIR (dry run)"
else
  mkdir -p "$OUT_DIR"
  : >"$LOG"
  {
    echo "# device_check ($MODE mode)"
    echo
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'), code $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "Python: $PY"
    echo
    echo "| step | exit | seconds | limit |"
    echo "|---|---|---|---|"
  } >"$SUMMARY"
  { nvidia-smi 2>&1 || echo "no nvidia-smi"; "$PY" -c "from banet_vo.provenance import machine_description as m; print(m())" 2>&1; } \
    >"$OUT_DIR/env.txt"
fi

FAILED=0
# step NAME LIMIT_S COMMAND...: run with a time limit, log its output, record exit status and duration.
step() {
  local name=$1 limit=$2
  shift 2
  if [ -n "$ONLY" ] && [[ "$ONLY" != *",$name,"* && "$ONLY" != *",${name%_processed},"* ]]; then
    return 0
  fi
  local shown="$*"
  if [ "$DRY" = 1 ]; then
    echo "[$name, limit ${limit}s] ${shown//"$LATENCY_PY"/<LATENCY_PY>}"
    return 0
  fi
  echo "== $name (limit ${limit}s): ${shown//"$LATENCY_PY"/<LATENCY_PY>}" | tee -a "$LOG" >&2
  local start=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  echo "| $name | $rc | $((SECONDS - start)) | $limit |" >>"$SUMMARY"
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG" >&2
  [ "$rc" -eq 0 ] || FAILED=$((FAILED + 1))
}

# Per-pair latency and peak memory of both presets (random weights: the cost does not depend on them).
LATENCY_PY='
import json, sys, time
import torch
from banet_vo.model.banet import BANet
from banet_vo.model.config import BANetConfig
device, warmup, repeats, threads, out = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
if threads > 0:
    torch.set_num_threads(threads)
torch.manual_seed(0)
rows = []
for preset in ("small", "paper"):
    config = BANetConfig.preset(preset)
    model = BANet(config).eval().to(device)
    w, h = config.image_width, config.image_height
    ref, tgt = torch.rand(1, 3, h, w, device=device), torch.rand(1, 3, h, w, device=device)
    intr = torch.tensor([[0.8 * w, 0.8 * w, (w - 1) / 2, (h - 1) / 2]], device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.no_grad():
        for _ in range(warmup):  # kernel selection, allocator
            model(ref, tgt, intr)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            model(ref, tgt, intr)
            sync()
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    rows.append({"preset": preset, "size": f"{w}x{h}", "device": device, "repeats": repeats,
                 "threads": torch.get_num_threads(),
                 "median_s": median, "min_s": times[0], "peak_cuda_mb": peak})
    print(f"{preset} {w}x{h} {device}: median {median * 1e3:.1f} ms/pair, "
          f"min {times[0] * 1e3:.1f} ms, peak CUDA memory {peak or 0:.0f} MB", flush=True)
    del model
json.dump(rows, open(out, "w"), indent=1)
'

# vo_latency counts a rate with no frame processed as served: this check fails unless some were.
PROCESSED_ROW='^\| 30 \| [1-9][0-9]* / '

if [ "$MODE" = cuda ]; then
  step gpu_tests 150 "$PY" -m pytest -m gpu -q -p no:cacheprovider
  step pair_latency 90 "$PY" -c "$LATENCY_PY" cuda 3 50 0 "$OUT_DIR/latency.json"
  step node_30hz 90 "$PY" -m benchmarks.vo_latency --device cuda --rates 30 --frames 150 \
    --results "$OUT_DIR/vo_latency.md"
  step node_30hz_processed 5 grep -Eq "$PROCESSED_ROW" "$OUT_DIR/vo_latency.md"
  if [ -d ../shared/data ]; then
    step real_clips 120 "$PY" -m benchmarks.real_clips --device cuda --threads 4 --clips kitti06 \
      --frontends xfeat --references orb --out "$OUT_DIR/real_clips.md"
    # What dominates a frame once XFeat and BA-Net are on the GPU (the window BA stays on the CPU).
    step frame_profile 60 "$PY" -m benchmarks.frame_profile --device cuda --threads 4 --clips kitti07 \
      --max-frames 80 --out "$OUT_DIR/frame_profile.md"
  fi
else
  # Reduced: the same steps, small enough for a shared 2-core machine (about a minute).
  step gpu_tests 60 "$PY" -m pytest -m gpu -q -p no:cacheprovider
  # One torch thread: the development machines are shared, where more threads oversubscribe the cores.
  step pair_latency 90 "$PY" -c "$LATENCY_PY" cpu 1 1 1 "$OUT_DIR/latency.json"
  step node_30hz 60 "$PY" -m benchmarks.vo_latency --device cpu --threads 2 --rates 30 --frames 30 \
    --results "$OUT_DIR/vo_latency.md"
  step node_30hz_processed 5 grep -Eq "$PROCESSED_ROW" "$OUT_DIR/vo_latency.md"
  if [ -d ../shared/data ]; then
    step frame_profile 60 "$PY" -m benchmarks.frame_profile --device cpu --threads 1 --clips kitti06 \
      --max-frames 6 --out "$OUT_DIR/frame_profile.md"
  fi
fi

if [ "$DRY" = 0 ]; then
  {
    echo
    echo "Failed steps: $FAILED"
    echo
    echo "## Figures"
    echo
    [ -f "$OUT_DIR/latency.json" ] && { echo '```'; cat "$OUT_DIR/latency.json"; echo '```'; echo; }
    [ -f "$OUT_DIR/vo_latency.md" ] && { cat "$OUT_DIR/vo_latency.md"; echo; }
    [ -f "$OUT_DIR/real_clips.md" ] && { cat "$OUT_DIR/real_clips.md"; echo; }
    [ -f "$OUT_DIR/frame_profile.md" ] && cat "$OUT_DIR/frame_profile.md"
  } >>"$SUMMARY"
  echo "device_check: $MODE mode, $FAILED failed step(s); figures in $OUT_DIR/summary.md" >&2
fi
exit "$FAILED"
