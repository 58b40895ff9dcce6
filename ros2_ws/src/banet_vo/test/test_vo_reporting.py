"""banet_vo.ros.vo_reporting: the ~/status message per frame outcome, the sliding counter window of
/diagnostics, and Pose → matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")
from banet_vo.odometry import FAILED, TRACKED, FrameResult, OdometryConfig  # noqa: E402
from banet_vo.ros.vo_reporting import CounterWindow, pose_matrix, tracking_status  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import Pose  # noqa: E402


def test_status_is_ok_while_tracking_and_warns_with_the_reason_when_lost():
    config = OdometryConfig()
    tracked = FrameResult(
        7.5,
        TRACKED,
        2,
        state="tracking",
        scale_source="learned",
        keyframes=4,
        scale_last_ratio=0.61234,
        scale_measurements=3,
        scale_spread=0.25,
    )
    ok = tracking_status("/ns/banet_vo: tracking", "cpu", tracked, 7.5, config, "/m/model.safetensors")
    values = {kv.key: kv.value for kv in ok.values}
    assert (
        ok.level == DiagnosticStatus.OK and ok.message == "tracking" and ok.name == "/ns/banet_vo: tracking"
    )
    assert values == {
        "state": "tracking",
        "frame": "tracked",
        "stamp": "7.500000000",
        "scale_source": "learned",
        "keyframes": "4",
        "scale_measurements": "3",
        "scale_last_ratio": "0.612",
        "scale_spread": "0.250",
        "trajectory_id": "2",
        "frontend": config.frontend,
        "model": "model.safetensors",
    }
    adapted = tracking_status("n", "cpu", tracked, 7.5, config, "m", matcher_version=3)
    assert {kv.key: kv.value for kv in adapted.values}["matcher_version"] == "3"
    failed = FrameResult(7.6, FAILED, 2, message="BA cost is not finite", state="lost")
    lost = tracking_status("n", "cpu", failed, 7.6, config, "m")
    assert lost.level == DiagnosticStatus.WARN and lost.message == "lost: BA cost is not finite"
    lost_values = {kv.key: kv.value for kv in lost.values}
    assert lost_values["scale_source"] == config.scale_source
    assert (lost_values["scale_measurements"], lost_values["scale_last_ratio"]) == ("0", "nan")
    # No map yet because the camera has not moved (a robot standing at its start): waiting, not lost.
    why = "initialising: parallax 0.00 deg < 1.0 deg"
    waiting = FrameResult(7.7, FAILED, 2, message=why, state="initialising", waiting=True)
    status = tracking_status("n", "cpu", waiting, 7.7, config, "m")
    assert status.level == DiagnosticStatus.OK and status.message == why
    assert {kv.key: kv.value for kv in status.values}["state"] == "initialising"
    # A failure the pipeline counts (a blank view where a map should start) is a loss all the same.
    blank = "12 keypoints, too few to start a map"
    counted = FrameResult(7.8, FAILED, 2, message=blank, state="initialising")
    assert tracking_status("n", "cpu", counted, 7.8, config, "m").level == DiagnosticStatus.WARN


def test_counter_window_reports_recent_increases_and_forgets_old_ones():
    window = CounterWindow(start=0.0)
    keys = ("dropped", "processed")
    first = window.update(1.0, {"dropped": 1, "processed": 10}, 5.0, keys, "processed")
    assert first == {"recent_dropped": 1, "recent_processed": 10, "rate_hz": 10.0, "window_s": 1.0}
    for t in range(2, 7):
        window.update(float(t), {"dropped": 1, "processed": 10 + 10 * (t - 1)}, 5.0, keys, "processed")
    later = window.update(7.0, {"dropped": 1, "processed": 70}, 5.0, keys, "processed")
    assert later["recent_dropped"] == 0  # the drop at t=1 left the 5 s window
    assert later["recent_processed"] == 50 and later["rate_hz"] == pytest.approx(10.0)
    assert later["window_s"] == 5.0


def test_pose_matrix_and_its_refusals():
    pose = Pose()
    pose.position.x, pose.position.y = 1.0, -2.0
    pose.orientation.z, pose.orientation.w = math.sin(0.25), math.cos(0.25)
    T = pose_matrix(pose)
    np.testing.assert_allclose(T[:2, 3], [1.0, -2.0])
    assert math.atan2(T[1, 0], T[0, 0]) == pytest.approx(0.5)
    pose.orientation.w = 0.0
    pose.orientation.z = 0.5
    with pytest.raises(ValueError, match="unit quaternion"):
        pose_matrix(pose)


def test_live_setting_advice_names_what_is_missing_once_many_frames_are_dropped():
    from banet_vo.odometry import TrackingConfig
    from banet_vo.ros.vo_reporting import (
        LIVE_ADVICE_DROPPED_SHARE,
        LIVE_ADVICE_MIN_FRAMES,
        live_setting_advice,
    )

    default = OdometryConfig(frontend="xfeat")
    n = LIVE_ADVICE_MIN_FRAMES
    many = math.ceil(LIVE_ADVICE_DROPPED_SHARE * n)
    advice = live_setting_advice(n, many, default)
    assert advice.startswith(f"dropped {many} of the {n} frames received")
    assert "background_ba:=true tracking_banet_min_interval:=0.5" in advice
    assert live_setting_advice(n - 1, n - 1, default) is None  # too early to tell
    assert live_setting_advice(n, many - 1, default) is None  # it keeps up well enough
    assert live_setting_advice(n, n, OdometryConfig(frontend="none")) is None  # BA-Net alone has neither
    background = OdometryConfig(frontend="xfeat", background_ba=True)
    advice = live_setting_advice(n, many, background)
    assert "tracking_banet_min_interval:=0.5" in advice and "background_ba:=true" not in advice
    interval = OdometryConfig(frontend="xfeat", tracking=TrackingConfig(banet_min_interval=0.5))
    assert "background_ba:=true" in live_setting_advice(n, many, interval)
    live = OdometryConfig(
        frontend="xfeat", background_ba=True, tracking=TrackingConfig(banet_min_interval=0.5)
    )
    assert live_setting_advice(n, n, live) is None  # already the live setting
