"""The Docker files, checked without a Docker engine (none on the CI machines): what they COPY exists,
they install every dependency package.xml declares that the ros-base image lacks, and the compose file
builds these Dockerfiles and replays through the installed launch file."""

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


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_installs_the_package_dependencies(dockerfile):
    steps = _instructions(dockerfile)
    for op, args in steps:
        if op == "COPY":
            source = args.split()[0]
            assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
    apt = " ".join(args for op, args in steps if op == "RUN" and "apt-get install" in args)
    keys = {
        e.text
        for e in ET.parse(ROOT / "ros2_ws/src/banet_vo/package.xml").getroot()
        if e.tag == "exec_depend"
    }
    for key in sorted(keys - ROS_BASE):
        wanted = key if key.startswith("python3-") else "ros-${ROS_DISTRO}-" + key.replace("_", "-")
        assert wanted in apt.split(), f"{dockerfile.name} does not install {wanted} (package.xml: {key})"
    copied = [args.split()[0] for op, args in steps if op == "COPY"]
    assert {"requirements/", "ros2_ws/src", "models", "docker/entrypoint.sh"} <= set(copied)


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
