"""Shared pytest fixtures and markers for the whole repository.

DDS discovery is limited to this machine. The ROS_DOMAIN_ID of a test run: BANET_VO_TEST_DOMAIN_ID when
set (a number, or `auto`), else the ROS_DOMAIN_ID the user already has, else one of its own from the
process id, so parallel runs on one host never hear each other. `auto` asks for that last choice even when
ROS_DOMAIN_ID is set (e.g. tests next to a running robot on the same domain). Under pytest-xdist (`make test`
runs two workers) worker gwK takes the run's domain plus K, so the workers never hear each other either.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _pick_domain_id() -> int:
    # Fast DDS on Linux: domains 0..101 keep the computed ports below the ephemeral range.
    return 1 + os.getpid() % 100


def _test_domain_id(env: dict[str, str]) -> str:
    asked = env.get("BANET_VO_TEST_DOMAIN_ID", "").strip()
    if asked and asked != "auto":
        return asked
    if not asked and env.get("ROS_DOMAIN_ID", "").strip():
        return env["ROS_DOMAIN_ID"].strip()  # the user's choice is kept
    return str(_pick_domain_id())


def _worker_domain_id(run_domain: str, worker: str) -> str:
    """The domain of xdist worker `worker` ("gwK"; "" outside xdist): the run's domain plus K, kept in
    1..100 like a picked one."""
    if not worker:
        return run_domain
    if not (worker.startswith("gw") and worker[2:].isdigit()):
        raise ValueError(f"unexpected PYTEST_XDIST_WORKER {worker!r}: expected gw<number>")
    return str(1 + (int(run_domain) - 1 + int(worker[2:])) % 100)


def pytest_configure(config: pytest.Config) -> None:
    # The controller sets the run's domain first; its workers inherit it and each adds its own offset.
    run_domain = _test_domain_id(dict(os.environ))
    domain = _worker_domain_id(run_domain, os.environ.get("PYTEST_XDIST_WORKER", ""))
    os.environ["BANET_VO_TEST_DOMAIN_ID"] = run_domain
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    # One torch thread: the suite runs rclpy executors and worker threads next to torch on 2 cores, where
    # torch's own thread pool oversubscribes them (10-40x slower CPU tests were measured here).
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_rclpy = importlib.util.find_spec("rclpy") is not None
    has_cuda = _cuda_available()
    skip_ros = pytest.mark.skip(reason="rclpy is not importable: run `make setup` or source a ROS 2 distro")
    skip_gpu = pytest.mark.skip(
        reason="CUDA is not available on this machine (torch.cuda.is_available() is False)"
    )
    for item in items:
        if "ros" in item.keywords and not has_rclpy:
            item.add_marker(skip_ros)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The ROS_DOMAIN_ID this test run owns."""
    return int(os.environ["ROS_DOMAIN_ID"])


@pytest.fixture
def rclpy_context(ros_domain_id: int):
    """A fresh, initialised rclpy context on this run's domain; shut down after the test."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data with the real test sequences; tests that need it skip (with why) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kitti06_dir(shared_data: Path) -> Path:
    return shared_data / "kitti_odom06_000-050"


@pytest.fixture(scope="session")
def hololens_dir(shared_data: Path) -> Path:
    return shared_data / "hololens_000_003-052"


# A BA-Net small enough for unit tests (64x48, 8 channels, 4 bases); tests change what they need.
_TINY_BANET = dict(
    image_width=64,
    image_height=48,
    channels=8,
    num_basis=4,
    iterations=(1, 1),
    stem_channels=8,
    level2_channels=8,
    bottleneck_planes=(8, 8, 8, 8),
    decoder_channels=(8, 8, 8, 8),
    damping_hidden=8,
)


@pytest.fixture(scope="session")
def tiny_banet_config():
    """Factory: ``tiny_banet_config(**changes)`` → a tiny ``small``-preset BANetConfig."""
    from banet_vo.model.config import BANetConfig

    def make(**changes):
        return BANetConfig.preset("small", **{**_TINY_BANET, **changes})

    return make


@pytest.fixture
def cli_help(capsys):
    """Factory: ``cli_help(main)`` → what a CLI's ``main(["--help"])`` prints; fails unless it exits 0."""

    def read(main) -> str:
        with pytest.raises(SystemExit) as exc:
            main(["--help"])
        assert exc.value.code == 0
        return capsys.readouterr().out

    return read


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test (or the CLI it runs) that changes torch's thread count must not leave it changed: the next
    tests would oversubscribe the 2 cores, and a forked child would hang in torch's thread pool."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def still_estimator():
    """A BA-Net stand-in for node runs that need no model: no motion, constant depth, a fixed Hessian;
    enough for the node to publish a pose per frame."""
    from banet_vo.odometry import PairEstimate

    class StillEstimator:
        input_size = (32, 24)

        def __init__(self) -> None:
            A = np.random.default_rng(0).normal(size=(30, 8))
            self.hessian = A.T @ A + np.eye(8)

        def estimate(self, reference, target, pose_init=None) -> PairEstimate:
            depth = np.full((12, 16), 5.0, np.float32)
            return PairEstimate(np.eye(4), depth, reference.camera.resized(16, 12), self.hessian, 1e-3, 0.1)

    return StillEstimator()
