"""The Docker files, checked without a Docker engine (none on the CI machines): what they COPY exists,
they install every dependency package.xml declares that the ros-base image lacks, numpy and what is built
against it come from one source (pip, pinned as in requirements/base.txt), and the compose file builds
these Dockerfiles and replays through the installed launch file."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "docker/Dockerfile", ROOT / "docker/Dockerfile.cpu"]
# Packages of the ros-base variant (REP-2001: ros_core + geometry2, ...), which the images start from.
ROS_BASE = {
    "rclpy",
    "rcl_interfaces",
    "builtin_interfaces",
    "sensor_msgs",
    "geometry_msgs",
    "nav_msgs",
    "std_msgs",
    "std_srvs",
    "diagnostic_msgs",
    "rosgraph_msgs",
    "ament_index_python",
    "launch",
    "launch_ros",
    "tf2_msgs",
    "lifecycle_msgs",
}


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line and not line.startswith("#")]


# rosdep keys of package.xml that the images take from pip, pinned in requirements/base.txt, not from apt
PIP_PROVIDED = {
    "python3-numpy": "numpy",
    "python3-scipy": "scipy",
    "python3-matplotlib": "matplotlib",
    "python3-opencv": "opencv-python-headless",
    "python3-yaml": "pyyaml",
}
# apt packages with extension modules built against the distro's numpy (1.x on Ubuntu 24.04): beside pip's
# numpy 2 they fail to import ("A module that was compiled using NumPy 1.x cannot be run in NumPy 2")
APT_BUILT_ON_NUMPY = {
    "python3-numpy",
    "python3-scipy",
    "python3-matplotlib",
    "python3-opencv",
    "python3-skimage",
    "python3-sklearn",
    "python3-pandas",
}
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)$")


def _apt_packages(steps: list[tuple[str, str]]) -> set[str]:
    apt = " ".join(args for op, args in steps if op == "RUN" and "apt-get install" in args)
    return set(apt.split())


def _pip_pins(steps: list[tuple[str, str]]) -> dict[str, str]:
    """{package: version} of what the RUN steps pip-install pinned, following `grep -v PATTERN SRC > DST`
    filters of a requirements file (run from WORKDIR, where requirements/ is copied)."""
    files: dict[str, list[str]] = {}

    def lines(path: str) -> list[str]:
        return files[path] if path in files else (ROOT / path).read_text().splitlines()

    pins: dict[str, str] = {}
    for op, args in steps:
        if op != "RUN":
            continue
        for command in args.split("&&"):
            command = command.strip()
            grep = re.match(r"grep -v[A-Za-z]* '([^']*)' (\S+) > (\S+)$", command)
            if grep:
                pattern, source, target = grep.groups()
                files[target] = [line for line in lines(source) if not re.search(pattern, line)]
            elif re.search(r"\bpip install\b", command):
                words = command.split()
                texts = [lines(words[i + 1]) for i, w in enumerate(words) if w == "-r"]
                texts.append([w.strip("\"'") for w in words])
                for line in (line.strip() for text in texts for line in text):
                    match = _PIN.match(line)
                    if match:
                        pins[match.group(1).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_installs_the_package_dependencies(dockerfile):
    steps = _instructions(dockerfile)
    for op, args in steps:
        if op == "COPY":
            source = args.split()[0]
            assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
    apt = _apt_packages(steps)
    pins = _pip_pins(steps)
    keys = {
        e.text
        for e in ET.parse(ROOT / "ros2_ws/src/banet_vo/package.xml").getroot()
        if e.tag == "exec_depend"
    }
    for key in sorted(keys - ROS_BASE):
        if PIP_PROVIDED.get(key) in pins:
            continue
        wanted = key if key.startswith("python3-") else "ros-${ROS_DISTRO}-" + key.replace("_", "-")
        assert wanted in apt, f"{dockerfile.name} does not install {wanted} (package.xml: {key})"
    copied = [args.split()[0] for op, args in steps if op == "COPY"]
    assert {"requirements/", "ros2_ws/src", "models", "docker/entrypoint.sh"} <= set(copied)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_takes_numpy_and_what_is_built_on_it_from_pip_pinned(dockerfile):
    """apt's scipy and matplotlib beside pip's numpy 2 broke `from scipy.spatial.transform import Rotation`
    (banet_vo.ros.params) at the node's start: no apt package built against numpy when pip pins numpy, and
    the scientific stack at requirements/base.txt's versions, opencv included."""
    steps = _instructions(dockerfile)
    apt, pins = _apt_packages(steps), _pip_pins(steps)
    mixed = sorted(apt & APT_BUILT_ON_NUMPY)
    assert not ("numpy" in pins and mixed), (
        f"{dockerfile.name}: pip numpy=={pins['numpy']} beside apt's {mixed}"
    )
    base = {}
    for line in (ROOT / "requirements/base.txt").read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            base[match.group(1).lower()] = match.group(2)
    for package in PIP_PROVIDED.values():
        assert pins.get(package) == base[package], (
            f"{dockerfile.name}: {package} is not pinned as in base.txt"
        )
    assert "opencv-python-headless" in pins


def test_the_pip_pins_are_read_through_a_requirements_filter():
    """_pip_pins follows a grep filter (the images once dropped scipy, matplotlib and opencv this way)."""
    steps = [
        (
            "RUN",
            'python3 -m pip install "torch==2.13.0" --index-url X '
            "&& grep -vE '^(opencv-python-headless|scipy)==' requirements/base.txt > /tmp/base.txt "
            "&& python3 -m pip install -r /tmp/base.txt",
        )
    ]
    pins = _pip_pins(steps)
    assert pins["torch"] == "2.13.0" and "numpy" in pins and "matplotlib" in pins
    assert "scipy" not in pins and "opencv-python-headless" not in pins


def test_compose_replays_a_bag_with_both_images():
    compose = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())
    services = compose["services"]
    assert {"replay-cpu", "replay-cuda"} <= set(services)
    for name, service in services.items():
        assert (ROOT / "docker" / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), (
            name
        )
        command = service["command"]
        assert "ros2 launch banet_vo replay.launch.py" in command and "model:=" in command, name
        assert service["volumes"][0].endswith(":/bags:ro")
    assert "--gpus" not in services["replay-cpu"]["command"]
    assert services["replay-cuda"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
