"""The workspace itself: package manifests colcon accepts, importable packages, a working rclpy graph."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO_ROOT

PACKAGES = ["banet_vo", "imatching_online"]
REQUIRED_EXEC_DEPENDS = {
    "rclpy",
    "sensor_msgs",
    "geometry_msgs",
    "nav_msgs",
    "std_msgs",
    "std_srvs",
    "diagnostic_msgs",
    "cv_bridge",
    "tf2_ros",
    "python3-numpy",
    "python3-opencv",
}


@pytest.mark.parametrize("name", PACKAGES)
def test_package_xml_is_format3_ament_python(name: str) -> None:
    root = ET.parse(REPO_ROOT / "ros2_ws" / "src" / name / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == name
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.findall("exec_depend")}
    assert REQUIRED_EXEC_DEPENDS <= depends, REQUIRED_EXEC_DEPENDS - depends
    if name == "imatching_online":
        assert "banet_vo" in depends


@pytest.mark.parametrize("name", PACKAGES)
def test_ament_layout(name: str) -> None:
    pkg = REPO_ROOT / "ros2_ws" / "src" / name
    assert (pkg / "resource" / name).is_file(), "ament resource marker missing"
    for sub in ("launch", "config", "test", name):
        assert (pkg / sub).is_dir(), sub
    setup = ast.parse((pkg / "setup.py").read_text())
    assert any(isinstance(n, ast.Constant) and n.value == name for n in ast.walk(setup))
    assert "script_dir=$base/lib/" + name in (pkg / "setup.cfg").read_text()


def test_core_does_not_import_rclpy() -> None:
    """The ROS-free core must stay importable and testable without ROS."""
    offenders = []
    for name in PACKAGES:
        src = REPO_ROOT / "ros2_ws" / "src" / name / name
        for path in src.rglob("*.py"):
            if "ros" in path.relative_to(src).parts[:-1]:
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                mods = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    mods = [node.module]
                if any(
                    m.split(".")[0] in {"rclpy", "sensor_msgs", "nav_msgs", "geometry_msgs"} for m in mods
                ):
                    offenders.append(str(path))
    assert not offenders, offenders


@pytest.mark.ros
def test_rclpy_loopback_pub_sub(rclpy_context, ros_domain_id) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    assert rclpy_context.get_domain_id() == ros_domain_id
    node = rclpy.create_node("workspace_probe", context=rclpy_context)
    got: list[str] = []
    node.create_subscription(String, "probe", lambda m: got.append(m.data), 10)
    pub = node.create_publisher(String, "probe", 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        for i in range(200):
            pub.publish(String(data=f"m{i}"))
            executor.spin_once(timeout_sec=0.02)
            if len(got) >= 3:
                break
        assert got[:1] and got[0].startswith("m")
    finally:
        executor.shutdown()
        node.destroy_node()
