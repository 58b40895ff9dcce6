"""Launch files and packaging: the declared arguments (checked from the source, always), that setup.py
installs the launch files, RViz config and parameters, that package.xml names every ROS module the
package imports, and a real launch_pytest run of vo.launch.py (only where launch_ros and launch_pytest are
installed: a ROS 2 distro, not the pip venv)."""

from __future__ import annotations

import ast
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from banet_vo.model.shipped import DEFAULT_MODEL_NAME
from banet_vo.ros.launch_args import LAUNCH_PARAMETERS
from banet_vo.ros.topics import DEPTH_IMAGE, ODOMETRY, OUTPUTS, PATH, output_topic

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ros2_ws/src/banet_vo"
VO_LAUNCH = PACKAGE / "launch/vo.launch.py"
REPLAY_LAUNCH = PACKAGE / "launch/replay.launch.py"
HAVE_LAUNCH_ROS = all(importlib.util.find_spec(m) is not None for m in ("launch_ros", "launch_pytest"))


def _declared_arguments(path: Path) -> set[str]:
    """Names of DeclareLaunchArgument calls: literals, or each of LAUNCH_PARAMETERS where a call takes its
    name from a loop over them (vo.launch.py's node parameters)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            first = node.args[0]
            if isinstance(first, ast.Name):
                loops = [
                    g
                    for n in ast.walk(tree)
                    if isinstance(n, ast.GeneratorExp | ast.ListComp) and n.elt is node
                    for g in n.generators
                ]
                assert [ast.unparse(g.iter) for g in loops] == ["LAUNCH_PARAMETERS"], ast.unparse(node)
                assert ast.unparse(loops[0].target) == first.id
                names.update(LAUNCH_PARAMETERS)
                continue
            assert isinstance(first, ast.Constant), f"{path.name}: argument names must be literals"
            names.add(first.value)
    return names


def test_vo_launch_declares_the_documented_arguments():
    launch_level = {"image", "camera_info", "params_file", "namespace", "lifecycle", "autostart"}
    node_parameters = {
        "model",
        "device",
        "use_sim_time",
        "publish_tf",
        "rectify",
        "image_transport",
        "frontend",
        "scale_source",
        "camera_height",
        "base_frame",
        "background_ba",
        "tracking_banet_min_interval",
        "tracking_max_keypoints",
        "tracking_between_keyframes",
        "tracking_mapping",
    }
    assert set(LAUNCH_PARAMETERS) == node_parameters
    assert _declared_arguments(VO_LAUNCH) == launch_level | node_parameters
    text = VO_LAUNCH.read_text()
    assert "generate_launch_description" in text
    # the node parameters reach the node only through parameter_overrides (empty ones not at all)
    assert "parameter_overrides(given)" in text and "OpaqueFunction(function=_nodes)" in text
    assert "ParameterValue(value, value_type=str)" in text  # launch_ros would read "2024" as an int
    doc = ast.get_docstring(ast.parse(text))
    for name in launch_level | node_parameters:
        assert name in doc, f"vo.launch.py's docstring does not mention {name}"


def _calls(path: Path, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name
    ]


def _keyword(call: ast.Call, name: str) -> ast.expr:
    (value,) = [kw.value for kw in call.keywords if kw.arg == name]
    return value


def test_vo_launch_runs_either_node_and_starts_the_managed_one():
    """lifecycle:=false runs vo_node, lifecycle:=true vo_lifecycle_node (both console scripts of the
    package, sharing one set of parameters and remappings), configured then activated when autostart."""
    (node,) = _calls(VO_LAUNCH, "Node")
    (managed,) = _calls(VO_LAUNCH, "LifecycleNode")
    scripts = (PACKAGE / "setup.py").read_text()
    for call, executable, condition in (
        (node, "vo_node", "UnlessCondition"),
        (managed, "vo_lifecycle_node", "IfCondition"),
    ):
        assert _keyword(call, "executable").value == executable
        assert f"{executable} = banet_vo.ros." in scripts
        cond = _keyword(call, "condition")
        assert cond.func.id == condition and ast.unparse(cond.args[0]) == "lifecycle"
        assert [kw.arg for kw in call.keywords if kw.arg is None] == [None]  # **common: same parameters
    text = VO_LAUNCH.read_text()
    assert 'lifecycle = LaunchConfiguration("lifecycle")' in text
    # configure is emitted after the handler that activates on "inactive" is registered, in one group
    # whose condition is autostart
    (group,) = _calls(VO_LAUNCH, "GroupAction")
    assert ast.unparse(_keyword(group, "condition")) == "autostart"
    handler, configure = group.args[0].elts
    assert ast.unparse(configure) == "transition(Transition.TRANSITION_CONFIGURE)"
    (on_state,) = [
        c
        for c in ast.walk(handler)
        if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "OnStateTransition"
    ]
    assert _keyword(on_state, "goal_state").value == "inactive"
    assert ast.unparse(_keyword(on_state, "entities")) == "[transition(Transition.TRANSITION_ACTIVATE)]"
    # the condition's expression, as launch would evaluate it for each spelling of the two arguments
    (expr,) = [c for c in _calls(VO_LAUNCH, "PythonExpression") if "camera_info_beside" not in ast.unparse(c)]
    true = "'.lower() in ('true', '1')"
    for lifecycle, autostart, expected in (
        ("true", "true", True),
        ("True", "1", True),
        ("true", "false", False),
        ("false", "true", False),
    ):
        assert eval("'" + lifecycle + true + " and '" + autostart + true) is expected
    assert f'true = "{true}"' in text and ast.unparse(expr.args[0]).count("true") == 2


def test_replay_launch_plays_with_clock_and_ships_an_rviz_config():
    assert {"bag", "model", "device", "rate", "rviz"} <= _declared_arguments(REPLAY_LAUNCH)
    text = REPLAY_LAUNCH.read_text()
    assert '"--clock"' in text and '"use_sim_time": "true"' in text
    assert 'os.path.join(share, "rviz", "banet_vo.rviz")' in text  # from the installed share directory
    rviz = PACKAGE / "rviz/banet_vo.rviz"
    import yaml

    config = yaml.safe_load(rviz.read_text())
    topics = {d.get("Topic", {}).get("Value") for d in config["Visualization Manager"]["Displays"]}
    assert {output_topic(name) for name in (PATH, ODOMETRY, DEPTH_IMAGE)} <= topics
    shown = {t for t in topics if t and t.startswith(output_topic(""))}
    assert shown <= {output_topic(name) for name in OUTPUTS}  # no display of a topic the node lacks
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "odom"


def _data_files() -> dict[str, list[str]]:
    """setup.py's data_files, evaluated in the package directory (its module-level names defined, globs
    expanded) without running setup."""
    import os

    tree = ast.parse((PACKAGE / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    (data,) = [kw.value for kw in call.keywords if kw.arg == "data_files"]
    module = ast.Module(
        [n for n in tree.body if not (isinstance(n, ast.Expr) and n.value is call)], type_ignores=[]
    )
    cwd = os.getcwd()
    os.chdir(PACKAGE)
    try:
        namespace: dict = {"setup": None}
        exec(compile(module, "setup.py", "exec"), namespace)
        pairs = eval(compile(ast.Expression(data), "setup.py", "eval"), namespace)
    finally:
        os.chdir(cwd)
    return {dest: sorted(files) for dest, files in pairs}


def test_setup_installs_launch_files_rviz_config_and_parameters():
    files = _data_files()
    assert files["share/banet_vo/launch"] == ["launch/replay.launch.py", "launch/vo.launch.py"]
    assert files["share/banet_vo/rviz"] == ["rviz/banet_vo.rviz"]
    assert "config/banet_vo.yaml" in files["share/banet_vo/config"]
    # the shipped default model and its cards, where banet_vo.model.shipped looks in an installed package
    models = files["share/banet_vo/models"]
    assert {Path(f).name for f in models} == {
        DEFAULT_MODEL_NAME,
        "MODEL_CARD.md",
        "THIRD_PARTY_WEIGHTS.md",
    }
    for f in models:
        assert (PACKAGE / f).resolve().is_file(), f
        assert (PACKAGE / f).resolve().parent == ROOT / "models"
    for launch_file in (VO_LAUNCH, REPLAY_LAUNCH):  # the launch files find each other in the share directory
        assert 'get_package_share_directory("banet_vo")' in launch_file.read_text()


# Import roots that are ROS packages or system Python packages, with their rosdep keys.
_ROSDEP = {
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
}
_ROSDEP.update({"matplotlib": "python3-matplotlib"})
_ROS_ROOTS = {"rclpy", "tf2_ros", "cv_bridge", "launch", "launch_ros", "ament_index_python"}


def _imported_roots() -> set[str]:
    roots = set()
    for path in [*(PACKAGE / "banet_vo").rglob("*.py"), *(PACKAGE / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots


def test_package_xml_names_every_ros_and_system_dependency():
    depends = {e.text for e in ET.parse(PACKAGE / "package.xml").getroot() if e.tag.endswith("depend")}
    needed = set()
    for root in _imported_roots():
        if root in _ROS_ROOTS or root.endswith(("_msgs", "_srvs", "_interfaces")):
            needed.add(root)
        elif root in _ROSDEP:
            needed.add(_ROSDEP[root])
    assert {"rclpy", "tf2_msgs", "rcl_interfaces", "builtin_interfaces", "python3-scipy"} <= needed
    assert needed <= depends, sorted(needed - depends)


@pytest.mark.ros
@pytest.mark.skipif(
    not HAVE_LAUNCH_ROS,
    reason="launch_ros / launch_pytest are not installed (they are not on PyPI; run this in a ROS 2 distro); "
    "the same node graph is tested with rclpy executors in tests/test_vo_node.py",
)
def test_vo_launch_starts_the_node_and_stops_on_a_missing_model(tmp_path):
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    # A missing model must stop the node at start: vo_node exits with status 2 and says why.
    codes: list[int] = []
    description = LaunchDescription(
        [
            RegisterEventHandler(
                OnProcessExit(on_exit=lambda event, _context: codes.append(event.returncode))
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(VO_LAUNCH)),
                launch_arguments={"model": str(tmp_path / "missing.safetensors"), "device": "cpu"}.items(),
            ),
        ]
    )
    service = LaunchService()
    service.include_launch_description(description)
    service.run()
    assert codes == [2]


ADAPTATION_LAUNCH = ROOT / "ros2_ws/src/imatching_online/launch/vo_with_adaptation.launch.py"


def test_vo_with_adaptation_launch_connects_the_matcher_updates():
    """Both nodes on one camera; banet_vo's matcher_updates remapped to imatching's private topic (the
    names both nodes use, from banet_vo.ros.topics), banet_vo not rectifying (imatching does not either),
    and imatching's install rule ships the file."""
    from banet_vo.ros.topics import MATCHER_UPDATES

    assert _declared_arguments(ADAPTATION_LAUNCH) == {
        "image",
        "camera_info",
        "model",
        "matcher",
        "output_model",
        "adapt",
        "adapt_image_size",
        "vo_params_file",
        "imatching_params_file",
        "device",
        "use_sim_time",
        "namespace",
    }
    vo, imatching = _calls(ADAPTATION_LAUNCH, "Node")
    assert _keyword(vo, "executable").value == "vo_node" and _keyword(vo, "name").value == "banet_vo"
    assert _keyword(imatching, "executable").value == "imatching_node"
    assert _keyword(imatching, "name").value == "imatching"
    remaps = ast.unparse(_keyword(vo, "remappings"))
    assert f"('{MATCHER_UPDATES}', 'imatching/{MATCHER_UPDATES}')" in remaps and "*camera" in remaps
    assert ast.unparse(_keyword(imatching, "remappings")) == "camera"
    assert "'rectify': False" in ast.unparse(_keyword(vo, "parameters"))
    node_source = (ROOT / "ros2_ws/src/imatching_online/imatching_online/ros/node.py").read_text()
    assert '"~/" + MATCHER_UPDATES' in node_source  # what the remap points at
    setup = (ROOT / "ros2_ws/src/imatching_online/setup.py").read_text()
    assert '("share/" + package_name + "/launch", glob("launch/*.py"))' in setup


def test_each_launch_file_takes_camera_info_beside_the_image_by_default():
    """The camera_info argument defaults to image_transport's pairing, computed from the image argument by
    banet_vo.ros.topics (test_topics.py evaluates that expression), in every launch file that remaps it."""
    for path in (
        VO_LAUNCH,
        ADAPTATION_LAUNCH,
        ROOT / "ros2_ws/src/imatching_online/launch/imatching.launch.py",
    ):
        (argument,) = [
            c
            for c in _calls(path, "DeclareLaunchArgument")
            if isinstance(c.args[0], ast.Constant) and c.args[0].value == "camera_info"
        ]
        default = ast.unparse(_keyword(argument, "default_value"))
        assert default == "PythonExpression(camera_info_beside_launch(LaunchConfiguration('image')))", path
