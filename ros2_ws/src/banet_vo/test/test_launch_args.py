"""vo.launch.py's node-parameter arguments: empty ones are not passed, given ones are typed as the node's
parameter table types them and checked as the node checks them."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
from banet_vo.ros.launch_args import LAUNCH_PARAMETERS, launch_description, parameter_overrides
from banet_vo.ros.params import PARAMS, params_from_values


def test_empty_arguments_leave_every_parameter_to_the_params_file():
    assert parameter_overrides({name: "" for name in LAUNCH_PARAMETERS}) == {}
    assert parameter_overrides({}) == {}
    assert parameter_overrides({"camera_height": "  "}) == {}


def test_given_arguments_become_typed_parameters_the_node_accepts():
    given = {
        "model": "/data/2024.safetensors",
        "device": "cpu",
        "use_sim_time": "True",
        "publish_tf": "false",
        "rectify": "0",
        "image_transport": "compressed",
        "frontend": "xfeat",
        "scale_source": "ground_plane",
        "camera_height": "2",  # an integer's text: the float parameter must get 2.0, not 2
        "base_frame": "base_footprint",
        "background_ba": "true",
        "tracking_banet_min_interval": "1",  # a float parameter too
        "tracking_max_keypoints": "1024",
        "tracking_between_keyframes": "flow",
        "tracking_mapping": "background",
    }
    out = parameter_overrides(given)
    assert out == {
        "model": "/data/2024.safetensors",
        "device": "cpu",
        "use_sim_time": True,
        "publish_tf": False,
        "rectify": False,
        "image_transport": "compressed",
        "frontend": "xfeat",
        "scale_source": "ground_plane",
        "camera_height": 2.0,
        "base_frame": "base_footprint",
        "background_ba": True,
        "tracking_banet_min_interval": 1.0,
        "tracking_max_keypoints": 1024,
        "tracking_between_keyframes": "flow",
        "tracking_mapping": "background",
    }
    assert type(out["camera_height"]) is float
    assert parameter_overrides({"model": "123"}) == {"model": "123"}  # a path is never read as a number
    node_params = {k: v for k, v in out.items() if k != "use_sim_time"}  # rclpy's own parameter
    params = params_from_values(node_params)
    assert params.odometry.camera_height == 2.0 and params.odometry.background_ba is True
    tracking = params.odometry.tracking
    assert (tracking.between_keyframes, tracking.mapping) == ("flow", "background")
    assert tracking.banet_min_interval == 1.0
    assert tracking.max_keypoints == 1024 and type(out["tracking_max_keypoints"]) is int


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("camera_height", "tall", r"launch argument camera_height: expected float"),
        ("camera_height", "-1", r"launch argument camera_height: -1.0 is outside"),
        ("scale_source", "lidar", r"launch argument scale_source: must be one of"),
        ("publish_tf", "yes please", r"launch argument publish_tf: expected bool"),
        ("use_sim_time", "maybe", r"launch argument use_sim_time: true or false"),
        ("tracking_mapping", "thread", r"launch argument tracking_mapping: must be one of"),
        ("tracking_max_keypoints", "4", r"launch argument tracking_max_keypoints: 4 is outside"),
    ],
)
def test_a_bad_argument_fails_naming_it(name, text, message):
    with pytest.raises(ValueError, match=message):
        parameter_overrides({name: text})


def test_each_argument_is_described_by_its_node_parameter():
    for name in LAUNCH_PARAMETERS:
        text = launch_description(name)
        assert text.endswith("(empty: params_file's value, else the node's default)")
        if name in PARAMS:
            assert PARAMS[name].description in text
