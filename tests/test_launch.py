"""Launch files and packaging: the declared arguments (checked from the source, always), what each launch
file hands its nodes for given arguments (the description evaluated with stand-ins for launch and
launch_ros, always), that setup.py installs the launch files, RViz config, parameters and models, that
package.xml names every ROS module the package imports, and, where launch_ros is installed (a ROS 2 distro,
not the pip venv), the activation handler with the real launch_ros and a real LaunchService run of
vo.launch.py."""

from __future__ import annotations

import ast
import importlib.util
import math
import runpy
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml
from banet_vo.model.shipped import DEFAULT_MODEL_NAME
from banet_vo.ros.launch_args import LAUNCH_PARAMETERS
from banet_vo.ros.topics import DEPTH_IMAGE, ODOMETRY, OUTPUTS, PATH, output_topic

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ros2_ws/src/banet_vo"
IMATCHING_PACKAGE = ROOT / "ros2_ws/src/imatching_online"
VO_LAUNCH = PACKAGE / "launch/vo.launch.py"
REPLAY_LAUNCH = PACKAGE / "launch/replay.launch.py"
IMATCHING_LAUNCH = IMATCHING_PACKAGE / "launch/imatching.launch.py"
HAVE_LAUNCH_ROS = all(importlib.util.find_spec(m) is not None for m in ("launch", "launch_ros"))
# (the repository's launch/ folder makes `launch` importable here as a namespace package: not the real one)
HAVE_REAL_LAUNCH_ROS = importlib.util.find_spec("launch_ros") is not None
NO_LAUNCH_ROS = "launch_ros is not installed (not on PyPI; a ROS 2 distro has it)"


# -- launch files evaluated without launch / launch_ros ---------------------------------------------------
# launch and launch_ros are not on PyPI. These stand-ins do what the launch files ask of them as `ros2
# launch` would: arguments take the given text or their default, OpaqueFunctions run with the context,
# conditions read "true"/"1"/"false"/"0", PythonExpression evaluates its text, and launch_ros' parameter
# dicts are read as launch_ros reads them (plain text as YAML, ParameterValue by its type). What a node would
# get is then compared with what the user asked for.


class _Entity:
    """A launch class: keeps what it was built with."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class _Context:
    def __init__(self, configurations: dict[str, str]) -> None:
        self.launch_configurations = dict(configurations)


def _perform(value, context: _Context) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "".join(_perform(part, context) for part in value)
    return value.perform(context)


class _LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: _Context) -> str:
        return context.launch_configurations[self.name]


class _PythonExpression:
    def __init__(self, expression) -> None:
        self.expression = expression

    def perform(self, context: _Context) -> str:
        return str(eval(_perform(self.expression, context), {"math": math}))  # launch's: math available


class _IfCondition:
    def __init__(self, predicate) -> None:
        self.predicate = predicate

    def evaluate(self, context: _Context) -> bool:
        text = _perform(self.predicate, context).strip().lower()
        if text not in ("true", "1", "false", "0"):
            raise ValueError(f"condition {text!r} is not a boolean")  # launch refuses it too
        return text in ("true", "1")


class _UnlessCondition(_IfCondition):
    def evaluate(self, context: _Context) -> bool:
        return not super().evaluate(context)


class _OnStateTransition(_Entity):
    """launch_ros' OnStateTransition matching: the event comes from the target node, and each of transition,
    start_state and goal_state that is given equals the event's label."""

    def matches(self, event) -> bool:
        kw = self.kwargs
        return kw["target_lifecycle_node"] is event.action and all(
            kw.get(key) is None or kw[key] == getattr(event, key)
            for key in ("transition", "start_state", "goal_state")
        )


class _PackageNotFoundError(KeyError):
    pass


def _stand_in_modules(installed: tuple[str, ...]) -> dict[str, ModuleType]:
    """sys.modules entries for launch, launch_ros and ament_index_python.packages; the share directory of our
    packages is their source folder, and of the other packages only those in `installed` exist."""

    def module(name: str, **names) -> ModuleType:
        m = ModuleType(name)
        m.__dict__.update(names)
        return m

    def entities(*names: str, base: type = _Entity) -> dict[str, type]:
        return {name: type(name, (base,), {}) for name in names}

    node = type("Node", (_Entity,), {})
    shares = {"banet_vo": PACKAGE, "imatching_online": IMATCHING_PACKAGE}

    def share(name: str) -> str:
        if name in shares:
            return str(shares[name])
        if name in installed:
            return f"/opt/ros/test/share/{name}"
        raise _PackageNotFoundError(name)

    def prefix(name: str) -> str:
        share(name)
        return "/opt/ros/test"

    actions = "DeclareLaunchArgument EmitEvent ExecuteProcess GroupAction IncludeLaunchDescription LogInfo"
    actions += " OpaqueFunction RegisterEventHandler"
    return {
        "launch": module("launch", LaunchContext=_Context, LaunchDescription=_Entity),
        "launch.actions": module("launch.actions", **entities(*actions.split())),
        "launch.conditions": module(
            "launch.conditions", IfCondition=_IfCondition, UnlessCondition=_UnlessCondition
        ),
        "launch.events": module("launch.events", matches_action=lambda action: ("matches", action)),
        "launch.launch_description_sources": module(
            "launch.launch_description_sources", **entities("PythonLaunchDescriptionSource")
        ),
        "launch.substitutions": module(
            "launch.substitutions",
            LaunchConfiguration=_LaunchConfiguration,
            PythonExpression=_PythonExpression,
        ),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module(
            "launch_ros.actions", Node=node, LifecycleNode=type("LifecycleNode", (node,), {})
        ),
        "launch_ros.event_handlers": module(
            "launch_ros.event_handlers", OnStateTransition=_OnStateTransition
        ),
        "launch_ros.events": module("launch_ros.events"),
        "launch_ros.events.lifecycle": module("launch_ros.events.lifecycle", **entities("ChangeState")),
        "launch_ros.parameter_descriptions": module(
            "launch_ros.parameter_descriptions", **entities("ParameterValue")
        ),
        "ament_index_python.packages": module(
            "ament_index_python.packages",
            PackageNotFoundError=_PackageNotFoundError,
            get_package_share_directory=share,
            get_package_prefix=prefix,
        ),
    }


def _launch(
    monkeypatch, path: Path, arguments: dict[str, str] | None = None, installed: tuple[str, ...] = ()
) -> tuple[list[_Entity], _Context]:
    """The actions `ros2 launch <path> name:=value ...` would run, in order (OpaqueFunctions run, groups
    entered, arguments declared, what a false condition guards left out), and the launch context."""
    for name, stand_in in _stand_in_modules(installed).items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    description = runpy.run_path(str(path))["generate_launch_description"]()
    context = _Context(arguments or {})
    actions: list[_Entity] = []

    def visit(entities) -> None:
        for entity in entities:
            condition = entity.kwargs.get("condition")
            if condition is not None and not condition.evaluate(context):
                continue
            kind = type(entity).__name__
            if kind == "DeclareLaunchArgument":
                name = entity.args[0]
                if name not in context.launch_configurations:
                    assert "default_value" in entity.kwargs, f"argument {name} has no default: give it"
                    default = _perform(entity.kwargs["default_value"], context)
                    context.launch_configurations[name] = default
            elif kind == "OpaqueFunction":
                visit(entity.kwargs["function"](context) or [])
            elif kind == "GroupAction":
                visit(entity.args[0])
            else:
                actions.append(entity)

    visit(description.args[0])
    return actions, context


def _nodes(actions: list[_Entity]) -> dict[str, _Entity]:
    nodes = [a for a in actions if type(a).__name__ in ("Node", "LifecycleNode")]
    return {a.kwargs.get("name", a.kwargs["executable"]): a for a in nodes}


def _parameter_value(value, context: _Context):
    """A value of a launch_ros parameter dict as the node gets it: ParameterValue by its value_type, text and
    substitutions read as YAML (launch_ros' rule), Python values as they are."""
    if type(value).__name__ == "ParameterValue":
        text = _perform(value.args[0], context)
        return text if value.kwargs.get("value_type") is str else yaml.safe_load(text)
    if isinstance(value, bool | int | float):
        return value
    return yaml.safe_load(_perform(value, context))


def _parameters(node: _Entity, context: _Context) -> list:
    """The node's parameters in launch_ros' order: a params file's path, or a dict with its values read."""
    return [
        {k: _parameter_value(v, context) for k, v in entry.items()}
        if isinstance(entry, dict)
        else _perform(entry, context)
        for entry in node.kwargs["parameters"]
    ]


def _effective(node: _Entity, context: _Context) -> dict:
    """What the node ends up with: each params file (its /** and node-name sections) and dict in order, the
    later overriding the earlier, as rcl applies them."""
    values: dict = {}
    for entry in _parameters(node, context):
        if isinstance(entry, dict):
            values.update(entry)
            continue
        loaded = yaml.safe_load(Path(entry).read_text())
        for key in ("/**", node.kwargs["name"], "/" + node.kwargs["name"]):
            values.update((loaded.get(key) or {}).get("ros__parameters", {}))
    return values


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
        "depth_calibration",
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


# A lifecycle node's transitions as (transition, start_state, goal_state) labels, each step publishing one
# TransitionEvent: the node's configure, activate, a user's deactivate, a manager's cleanup and configure.
_CONFIGURE = [("configure", "unconfigured", "configuring"), ("transition_success", "configuring", "inactive")]
_LIFE = [
    *_CONFIGURE,
    ("activate", "inactive", "activating"),
    ("transition_success", "activating", "active"),
    ("deactivate", "active", "deactivating"),
    ("transition_success", "deactivating", "inactive"),
    ("cleanup", "inactive", "cleaningup"),
    ("transition_success", "cleaningup", "unconfigured"),
    *_CONFIGURE,
]
_FAILED_CONFIGURE = [
    ("configure", "unconfigured", "configuring"),
    ("transition_failure", "configuring", "unconfigured"),
]


def _activations(handler, matches, once: bool, events: list) -> list[int]:
    """Indices of `events` on which the handler emits its entities (launch unregisters a handle_once handler
    after its first)."""
    fired: list[int] = []
    for i, event in enumerate(events):
        if (not once or not fired) and matches(event):
            fired.append(i)
    return fired


@pytest.mark.parametrize(
    "events, expected",
    [(_LIFE, [1]), (_FAILED_CONFIGURE + _LIFE, [3])],
    ids=["configure-activate-deactivate-cleanup-configure", "after-a-failed-configure"],
)
def test_vo_launch_activates_after_its_first_configure_only(monkeypatch, events, expected):
    """lifecycle:=true autostart: configure at start, activate when that configure ends in inactive
    (configuring → inactive), never again: a deactivate (deactivating → inactive) stays, and a later
    cleanup + configure is left to whoever did it."""
    from lifecycle_msgs.msg import Transition

    actions, _ = _launch(monkeypatch, VO_LAUNCH, {"lifecycle": "true"})
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["LifecycleNode", "RegisterEventHandler", "EmitEvent"]  # handler before configure
    managed, register, configure = actions
    assert configure.kwargs["event"].kwargs["transition_id"] == Transition.TRANSITION_CONFIGURE
    handler = register.args[0]
    (activate,) = handler.kwargs["entities"]
    assert activate.kwargs["event"].kwargs["transition_id"] == Transition.TRANSITION_ACTIVATE
    assert activate.kwargs["event"].kwargs["lifecycle_node_matcher"] == ("matches", managed)
    transitions = [
        SimpleNamespace(action=managed, transition=t, start_state=start, goal_state=goal)
        for t, start, goal in events
    ]
    once = bool(handler.kwargs.get("handle_once"))
    assert _activations(handler, handler.matches, once, transitions) == expected
    other = SimpleNamespace(action=object(), transition="transition_success", start_state="configuring")
    assert not handler.matches(SimpleNamespace(**vars(other), goal_state="inactive"))  # another node's
    # autostart:=false or the plain node: nothing configures or activates
    for arguments in ({"lifecycle": "true", "autostart": "false"}, {}):
        actions, _ = _launch(monkeypatch, VO_LAUNCH, arguments)
        assert [type(a).__name__ for a in actions] == ["LifecycleNode" if arguments else "Node"]


@pytest.mark.skipif(
    not HAVE_REAL_LAUNCH_ROS, reason=NO_LAUNCH_ROS + "; the stand-in test above checks the same"
)
def test_vo_launch_activation_handler_matches_with_launch_ros(monkeypatch):
    """The same transitions through launch_ros' own OnStateTransition and StateTransition events."""
    import ament_index_python.packages
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction, RegisterEventHandler
    from launch_ros.actions import LifecycleNode
    from launch_ros.events.lifecycle import StateTransition
    from lifecycle_msgs.msg import State, TransitionEvent
    from lifecycle_msgs.msg import Transition as TransitionMsg

    monkeypatch.setattr(ament_index_python.packages, "get_package_share_directory", lambda name: str(PACKAGE))
    description = runpy.run_path(str(VO_LAUNCH))["generate_launch_description"]()
    context = LaunchContext()
    context.launch_configurations["lifecycle"] = "true"
    pending, handlers, managed = list(description.entities), [], []
    while pending:
        entity = pending.pop(0)
        if entity.condition is not None and not entity.condition.evaluate(context):
            continue
        if isinstance(entity, DeclareLaunchArgument | OpaqueFunction):
            pending[:0] = entity.visit(context) or []
        elif isinstance(entity, GroupAction):
            pending[:0] = entity.get_sub_entities()
        elif isinstance(entity, RegisterEventHandler):
            handlers.append(entity.event_handler)
        elif isinstance(entity, LifecycleNode):
            managed.append(entity)
    (handler,) = handlers
    (node,) = managed
    for events, expected in ((_LIFE, [1]), (_FAILED_CONFIGURE + _LIFE, [3])):
        transitions = [
            StateTransition(
                action=node,
                msg=TransitionEvent(
                    transition=TransitionMsg(label=t),
                    start_state=State(label=start),
                    goal_state=State(label=goal),
                ),
            )
            for t, start, goal in events
        ]
        assert _activations(handler, handler.matches, handler.handle_once, transitions) == expected


def test_replay_launch_plays_with_clock_and_ships_an_rviz_config():
    declared = {"bag", "model", "device", "rate", "rviz", "image_transport", "play_delay"}
    assert declared <= _declared_arguments(REPLAY_LAUNCH)
    text = REPLAY_LAUNCH.read_text()
    assert '"--clock"' in text and '"use_sim_time": "true"' in text
    # the node subscribes after its model is loaded and warmed up: the bag waits for it, not the reverse
    assert '"--delay",\n            LaunchConfiguration("play_delay")' in text
    # a compressed bag (banet-vo-bag --image-codec) replays too
    assert '"image_transport": LaunchConfiguration("image_transport")' in text
    assert 'os.path.join(share, "rviz", "banet_vo.rviz")' in text  # from the installed share directory
    rviz = PACKAGE / "rviz/banet_vo.rviz"
    import yaml

    config = yaml.safe_load(rviz.read_text())
    topics = {d.get("Topic", {}).get("Value") for d in config["Visualization Manager"]["Displays"]}
    assert {output_topic(name) for name in (PATH, ODOMETRY, DEPTH_IMAGE)} <= topics
    shown = {t for t in topics if t and t.startswith(output_topic(""))}
    assert shown <= {output_topic(name) for name in OUTPUTS}  # no display of a topic the node lacks
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "odom"


@pytest.mark.parametrize(
    "rviz, installed, starts",
    [
        (None, True, True),
        (None, False, False),
        ("true", True, True),
        ("false", True, False),
        ("0", False, False),
    ],
    ids=["default-with-rviz2", "default-on-ros-base", "true", "false", "0"],
)
def test_replay_launch_starts_rviz_only_where_rviz2_is_installed(monkeypatch, rviz, installed, starts):
    """rviz2 is no dependency of the package: by default RViz starts where it is installed, and without it
    the replay runs alone and says why (launch_ros would stop the whole launch: package 'rviz2' not found)."""
    arguments = {"bag": "/bags/kitti06"} | ({"rviz": rviz} if rviz is not None else {})
    actions, _ = _launch(monkeypatch, REPLAY_LAUNCH, arguments, ("rviz2",) if installed else ())
    kinds = [type(a).__name__ for a in actions]
    assert kinds[:2] == ["IncludeLaunchDescription", "ExecuteProcess"]  # the node and the bag, always
    rviz_nodes = [a for a in actions if type(a).__name__ == "Node" and a.kwargs["package"] == "rviz2"]
    assert len(rviz_nodes) == starts
    if starts:
        config = Path(rviz_nodes[0].kwargs["arguments"][1])
        assert config == PACKAGE / "rviz/banet_vo.rviz" and config.is_file()
    logs = [a.kwargs["msg"] for a in actions if type(a).__name__ == "LogInfo"]
    assert logs == (
        ["rviz2 is not installed: replaying without RViz (install ros-$ROS_DISTRO-rviz2 for it)"]
        if rviz is None and not installed
        else []
    )


def test_replay_launch_refuses_rviz_true_without_rviz2_and_an_unknown_choice(monkeypatch):
    with pytest.raises(ValueError, match="rviz: true, but the rviz2 package is not installed"):
        _launch(monkeypatch, REPLAY_LAUNCH, {"bag": "/bags/b", "rviz": "true"})
    with pytest.raises(ValueError, match="launch argument rviz: one of auto, true, false"):
        _launch(monkeypatch, REPLAY_LAUNCH, {"bag": "/bags/b", "rviz": "yes"}, ("rviz2",))


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
    # every shipped model and card (README's `model:=models/NAME`), where banet_vo.model.shipped looks in an
    # installed package
    models = files["share/banet_vo/models"]
    shipped = {path.name for path in (ROOT / "models").iterdir() if path.is_file()}
    assert {
        DEFAULT_MODEL_NAME,
        "MODEL_CARD.md",
        "MATCHER_CARD.md",
        "banet_small_xfeat.safetensors",
    } <= shipped
    assert "matcher_synthetic.safetensors" in shipped
    assert sorted(Path(f).name for f in models) == sorted(shipped)
    for f in models:
        assert (PACKAGE / f).resolve().is_file(), f
        assert (PACKAGE / f).resolve().parent == ROOT / "models"
    for launch_file in (VO_LAUNCH, REPLAY_LAUNCH):  # the launch files find each other in the share directory
        assert 'get_package_share_directory("banet_vo")' in launch_file.read_text()


def test_a_models_path_given_outside_the_checkout_is_the_installed_copy(monkeypatch, tmp_path):
    """README's `model:=models/banet_small_xfeat.safetensors` and docs/imatching-node.md's
    `matcher:=models/matcher_synthetic.safetensors` from any working directory: a relative models/NAME (or
    NAME) that is not there is the file setup.py installed into share/banet_vo/models (found as the
    default model is: banet_vo.model.shipped); a path that is there, absolute or elsewhere is the user's."""
    import banet_vo.ros.params as vo_params
    import imatching_online.ros.params as imatching_params
    from banet_vo.model import shipped

    prefix = tmp_path / "install"  # an install with no checkout beside it
    installed = prefix / "share/banet_vo/models"
    installed.mkdir(parents=True)
    for name in ("banet_small_xfeat.safetensors", "matcher_synthetic.safetensors"):
        (installed / name).write_bytes(b"stand-in")
    monkeypatch.setattr(shipped, "_ROOT", prefix)
    for module in (vo_params, imatching_params):  # no ROS install of the package on this machine's index
        monkeypatch.setattr(module, "ament_model_dirs", lambda: [])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    def model(text: str) -> str:
        return vo_params.params_from_values({"model": text}).model

    xfeat = str(installed / "banet_small_xfeat.safetensors")
    assert model("models/banet_small_xfeat.safetensors") == xfeat
    assert model("banet_small_xfeat.safetensors") == xfeat
    matcher = imatching_params.params_from_values({"matcher": "models/matcher_synthetic.safetensors"}).matcher
    assert matcher == str(installed / "matcher_synthetic.safetensors")
    assert imatching_params.params_from_values({}).matcher == "xfeat:pretrained"
    for text in (
        "runs/banet_small_xfeat.safetensors",  # another folder: the user's (and missing)
        "/nowhere/banet_small_xfeat.safetensors",
        "models/banet_unknown.safetensors",
    ):
        assert model(text) == text
    (elsewhere / "models").mkdir()
    (elsewhere / "models/banet_small_xfeat.safetensors").write_bytes(b"the user's own")
    assert model("models/banet_small_xfeat.safetensors") == "models/banet_small_xfeat.safetensors"


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
    reason="launch / launch_ros are not installed (they are not on PyPI; run this in a ROS 2 distro); "
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


def test_vo_with_adaptation_launch_connects_the_matcher_updates(monkeypatch, tmp_path):
    """Both nodes on one camera; banet_vo's matcher_updates remapped to imatching's private topic (the
    names both nodes use, from banet_vo.ros.topics), neither rectifying (the input is image_rect: both take
    P as its camera, whatever their params files say), and imatching's install rule ships the file."""
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
    mine = {"/**": {"ros__parameters": {"rectify": True}}}
    for arguments in (
        {},
        {
            "vo_params_file": _params_file(tmp_path, mine),
            "imatching_params_file": _params_file(tmp_path, mine),
        },
    ):
        actions, context = _launch(monkeypatch, ADAPTATION_LAUNCH, arguments)
        nodes = _nodes(actions)
        assert _effective(nodes["banet_vo"], context)["rectify"] is False
        assert _effective(nodes["imatching"], context)["rectify"] is False
        assert _effective(nodes["banet_vo"], context)["frontend"] == "xfeat"
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


def _params_file(folder: Path, content: dict) -> str:
    """A params file with `content` in `folder` (a test's tmp_path)."""
    path = folder / f"params{len(list(folder.glob('params*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_imatching_launch_leaves_what_no_argument_gives_to_the_params_file(monkeypatch, tmp_path):
    """An argument the user did not give passes nothing (as vo.launch.py: banet_vo.ros.launch_args), so a
    params file's matcher, output_model, device, adapt, use_sim_time and rectify are kept; a given argument
    overrides the file, typed as the node's parameter; a bad one fails the launch naming it."""
    package_file = str(IMATCHING_PACKAGE / "config/imatching_online.yaml")
    actions, context = _launch(monkeypatch, IMATCHING_LAUNCH)
    node = _nodes(actions)["imatching"]
    assert _parameters(node, context) == [package_file, {}]
    assert ast.unparse(_keyword(_calls(IMATCHING_LAUNCH, "Node")[0], "parameters")).endswith("overrides]")

    theirs = {
        "matcher": "/work/matcher_kitti_adapted.safetensors",
        "output_model": "/work/out.safetensors",
        "device": "cpu",
        "adapt": False,
        "use_sim_time": True,
        "rectify": False,
    }
    mine = _params_file(tmp_path, {"/**": {"ros__parameters": theirs}})
    actions, context = _launch(monkeypatch, IMATCHING_LAUNCH, {"params_file": mine})
    got = _effective(_nodes(actions)["imatching"], context)
    assert {name: got[name] for name in theirs} == theirs

    given = {
        "matcher": "xfeat:pretrained",
        "output_model": "2024",  # a path, never read as a number
        "device": "auto",
        "adapt": "true",
        "use_sim_time": "False",
        "rectify": "1",
    }
    actions, context = _launch(monkeypatch, IMATCHING_LAUNCH, {"params_file": mine, **given})
    node = _nodes(actions)["imatching"]
    assert _parameters(node, context) == [
        mine,
        {
            "matcher": "xfeat:pretrained",
            "output_model": "2024",
            "device": "auto",
            "adapt": True,
            "use_sim_time": False,
            "rectify": True,
        },
    ]
    with pytest.raises(ValueError, match="launch argument device: must be one of"):
        _launch(monkeypatch, IMATCHING_LAUNCH, {"device": "tpu"})


def test_vo_with_adaptation_leaves_what_no_argument_gives_to_the_params_files(monkeypatch, tmp_path):
    """Neither node gets a value for an argument the user did not give: the params files decide (model,
    device and use_sim_time of banet_vo; matcher, output_model, adapt, max_image_size, device and use_sim_time
    of imatching). This file's own defaults (output_model under ROS_HOME, the camera's own size) replace
    only the package's params file; given arguments replace everything, named as the launch argument."""
    vo_package = str(PACKAGE / "config/banet_vo.yaml")
    actions, context = _launch(monkeypatch, ADAPTATION_LAUNCH)
    nodes = _nodes(actions)
    vo, imatching = nodes["banet_vo"], nodes["imatching"]
    assert _parameters(vo, context) == [vo_package, {}, {"rectify": False, "frontend": "xfeat"}]
    got = _effective(imatching, context)
    expected_output = str(Path(runpy.run_path(str(ADAPTATION_LAUNCH))["DEFAULT_OUTPUT"]))
    assert expected_output.endswith("imatching/xfeat_adapted.safetensors")
    assert (got["output_model"], got["max_image_size"]) == (expected_output, 4096)
    assert (got["matcher"], got["adapt"], got["device"]) == ("xfeat:pretrained", True, "auto")

    vo_theirs = {"model": "/work/banet_small_xfeat.safetensors", "device": "cpu", "use_sim_time": True}
    im_theirs = {
        "matcher": "/work/matcher_kitti_adapted.safetensors",
        "output_model": "/work/out.safetensors",
        "adapt": False,
        "max_image_size": 640,
        "device": "cpu",
        "use_sim_time": True,
    }
    files = {
        "vo_params_file": _params_file(tmp_path, {"/**": {"ros__parameters": vo_theirs}}),
        "imatching_params_file": _params_file(tmp_path, {"/**": {"ros__parameters": im_theirs}}),
    }
    actions, context = _launch(monkeypatch, ADAPTATION_LAUNCH, files)
    nodes = _nodes(actions)
    got_vo, got_im = _effective(nodes["banet_vo"], context), _effective(nodes["imatching"], context)
    assert {name: got_vo[name] for name in vo_theirs} == vo_theirs
    assert {name: got_im[name] for name in im_theirs} == im_theirs

    given = {
        "model": "/data/2024.safetensors",
        "matcher": "xfeat:pretrained",
        "output_model": "/data/adapted.safetensors",
        "adapt": "true",
        "adapt_image_size": "320",
        "device": "auto",
        "use_sim_time": "false",
    }
    actions, context = _launch(monkeypatch, ADAPTATION_LAUNCH, {**files, **given})
    nodes = _nodes(actions)
    assert _parameters(nodes["banet_vo"], context)[1] == {
        "model": "/data/2024.safetensors",
        "device": "auto",
        "use_sim_time": False,
    }
    assert _parameters(nodes["imatching"], context)[-2] == {
        "matcher": "xfeat:pretrained",
        "output_model": "/data/adapted.safetensors",
        "adapt": True,
        "max_image_size": 320,
        "device": "auto",
        "use_sim_time": False,
    }
    with pytest.raises(ValueError, match=r"launch argument adapt_image_size \(parameter max_image_size\)"):
        _launch(monkeypatch, ADAPTATION_LAUNCH, {"adapt_image_size": "5"})
