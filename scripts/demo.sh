#!/usr/bin/env bash
# `make demo`: render a synthetic driving sequence, bag it, run banet_vo on the bag (banet-vo-run: the node
# and the bag player as one rclpy graph), print ATE/RPE and depth abs rel against ground truth, and leave
# trajectories, depth maps and plots in demo_out/.
#
# Environment knobs: VENV (.venv), MODEL (models/banet_small_synthetic.safetensors), OUT (demo_out),
# FRAMES (40), SIZE (256x192), SEED (4242, a scene the shipped model was not trained on), RATE (1.0).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
MODEL=${MODEL:-models/banet_small_synthetic.safetensors}
OUT=${OUT:-demo_out}
FRAMES=${FRAMES:-40}
SIZE=${SIZE:-256x192}
SEED=${SEED:-4242}
RATE=${RATE:-1.0}
BIN="$VENV/bin"

# DDS stays on this machine; a domain of our own so a parallel run elsewhere does not interfere.
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((1 + $$ % 100))}

if [ ! -f "$MODEL" ]; then
    echo "demo: model $MODEL not found (set MODEL=path/to/checkpoint.safetensors)" >&2
    exit 2
fi

rm -rf "$OUT"
mkdir -p "$OUT"
echo "demo: rendering $FRAMES frames ($SIZE, seed $SEED)" >&2
"$BIN/banet-vo-synth" "$OUT/sequence" --scene driving --frames "$FRAMES" --size "$SIZE" --seed "$SEED"
echo "demo: writing the bag" >&2
"$BIN/banet-vo-bag" "$OUT/sequence" "$OUT/bag" --depth
echo "demo: running banet_vo on the bag, default settings (its warning about a small camera is for real" >&2
echo "      cameras; this synthetic one is $SIZE)" >&2
"$BIN/banet-vo-run" "$OUT/bag" --out "$OUT" --model "$MODEL" --rate "$RATE" --depth-every 5
echo "demo: done. Trajectory plots: $OUT/trajectory_sim3.png $OUT/trajectory_se3.png; depth maps: $OUT/depth/" >&2
