"""The xfeat front end (KeyframeOdometry) on real KITTI 06 frames: accuracy, metric scale from the ground
plane, and the degenerate inputs a robot meets (stopped camera, textureless views, pure rotation, gaps)."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from banet_vo.data.readers import open_sequence
from banet_vo.evaluation.trajectory import align_trajectory, ape
from banet_vo.odometry import (
    FAILED,
    LOST,
    OUT_OF_ORDER,
    TRACKED,
    BANetEstimator,
    KeyframeOdometry,
    OdometryConfig,
    TrackingConfig,
    make_odometry,
)
from scipy.spatial.transform import Rotation

MODELS = Path(__file__).resolve().parents[4] / "models"
MODEL = MODELS / "banet_small_synthetic.safetensors"
XFEAT_MODEL = MODELS / "banet_small_xfeat.safetensors"  # the shipped alternative (models/MODEL_CARD.md)
KITTI_HEIGHT = 1.65  # m, camera above the road (KITTI setup)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def estimator():
    return BANetEstimator.from_checkpoint(MODEL, device="cpu")


@pytest.fixture(scope="module")
def xfeat_estimator():
    return BANetEstimator.from_checkpoint(XFEAT_MODEL, device="cpu")


@pytest.fixture(scope="module")
def kitti06(kitti06_dir):
    seq = open_sequence(kitti06_dir)
    return [seq[i] for i in range(len(seq))]


def _vo(estimator, window_ba_worker=None, **config):
    return make_odometry(
        estimator,
        OdometryConfig(frontend="xfeat", scale_source="ground_plane", camera_height=KITTI_HEIGHT, **config),
        window_ba_worker=window_ba_worker,
    )


def _ate(est: list[np.ndarray], gt: list[np.ndarray], align: str) -> tuple[float, float]:
    from evo.core.trajectory import PosePath3D

    aligned, scale = align_trajectory(PosePath3D(poses_se3=est), PosePath3D(poses_se3=gt), align)
    stats, _ = ape(PosePath3D(poses_se3=gt), aligned)
    return stats["rmse"], scale


def test_make_odometry_builds_the_keyframe_pipeline(estimator):
    assert isinstance(_vo(estimator), KeyframeOdometry)


def _assert_first_30_kitti06_frames(est, gt):
    """Metric poses out of 28+ of the 30 frames, within about 1.5x of the measured ATE and scale."""
    assert len(est) >= 28
    sim3, scale = _ate(est, gt, "sim3")
    se3, _ = _ate(est, gt, "se3")
    assert sim3 < 0.45
    assert se3 < 0.8
    assert 0.85 < scale < 1.15


def test_kitti06_metric_trajectory(estimator, kitti06):
    """First 30 frames (35 m). Measured 2026-12-03 with the shipped model: Sim(3) 0.296 m, SE(3)
    0.544 m, Sim(3) scale 1.05 (the scale filter starts from few ground measurements; the whole
    51-frame clip gives 0.343 / 0.437 m). Thresholds: about 1.5x the measured figure, so a wrong sign,
    axis or scale fails while noise does not."""
    vo = _vo(estimator)
    est, gt = [], []
    for f in kitti06[:30]:
        r = vo.process(f.image, f.timestamp, f.camera)
        assert r.status != FAILED or r.T_odom_camera is None
        if r.T_odom_camera is not None:
            assert np.isfinite(r.T_odom_camera).all() and np.isfinite(r.pose_covariance).all()
            est.append(r.T_odom_camera)
            gt.append(f.pose)
    _assert_first_30_kitti06_frames(est, gt)
    # Direction of travel in the odom-camera frame: forward is +z, the car drives straight ahead.
    travel = est[-1][:3, 3] - est[0][:3, 3]
    truth = gt[-1][:3, 3] - gt[0][:3, 3]
    assert travel @ truth / (np.linalg.norm(travel) * np.linalg.norm(truth)) > 0.99
    assert np.linalg.norm(travel) == pytest.approx(np.linalg.norm(truth), rel=0.15)


def test_kitti06_metric_trajectory_with_the_ceres_window_solver(estimator, kitti06):
    """window_solver ceres (COLMAP's adjuster) end to end on the same 30 frames. Measured 2026-12-04:
    Sim(3) 0.283 m, SE(3) 0.554 m, scale 1.05 (GTSAM: 0.296 / 0.544); thresholds as above."""
    vo = _vo(estimator, window_solver="ceres")
    est, gt, _ = _run(vo, kitti06[:30])
    assert vo._ba.config.solver == "ceres"
    _assert_first_30_kitti06_frames(est, gt)
    with pytest.raises(ValueError, match="window_solver must be one of"):
        OdometryConfig(window_solver="g2o")


def _learned_scale_sim3(estimator, frames) -> tuple[int, float, float]:
    """Poses out, Sim(3) ATE and its scale factor of the xfeat front end with the learned scale."""
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source="learned"))
    est, gt, _ = _run(vo, frames)
    return (len(est), *_ate(est, gt, "sim3"))


def test_kitti06_learned_scale_with_the_xfeat_encoder_model(xfeat_estimator, kitti06):
    """The shipped alternative BA-Net (XFeat's encoder, real-appearance training) gives the scale on an
    unseen KITTI sequence. Measured 2026-12-04 (scale median over every keyframe) on the first 30 frames:
    Sim(3) 0.195 m, scale factor 1.38 (the 15-keyframe median: 0.219 m, 1.38; the default model now
    0.269 m, 2.13). A wrong encoder, input geometry or focal rescaling moves the scale far outside the
    bounds."""
    poses, sim3, scale = _learned_scale_sim3(xfeat_estimator, kitti06[:30])
    assert poses >= 28
    assert sim3 < 0.35
    assert 1.2 < scale < 1.6  # a focal factor of 1.22 (KITTI's 122 px / 100) either way falls outside


def test_hololens_learned_scale_with_the_xfeat_encoder_model(xfeat_estimator, hololens_dir):
    """The same model on the head-mounted camera (hololens_000_003-052, validation frames, 50). Measured
    2026-12-04: Sim(3) 0.060 m, scale factor 0.67 (the default model: 0.054 m, 0.75). The scale factor is
    its known depth bias on this camera (~1.5x too long, models/MODEL_CARD.md), kept inside tight bounds so
    that a change of the depth head, the input geometry or the focal factor (1.25 here) shows."""
    seq = open_sequence(hololens_dir)
    poses, sim3, scale = _learned_scale_sim3(xfeat_estimator, [seq[i] for i in range(len(seq))])
    assert poses >= 45
    assert sim3 < 0.1
    assert 0.56 < scale < 0.78


def _every_fifth_hololens_frame(shared_data):
    seq = open_sequence(shared_data / "hololens_000_003-199")
    return [seq[i] for i in range(0, len(seq), 5)]


def test_dropped_frames_are_tracked_from_the_newest_keyframe(estimator, shared_data):
    """A slow live node sees every 5th frame of a 10 Hz head-mounted camera (2 frames/s, 40 frames): a
    view moves so far that PnP finds too few of the window's landmarks. Without the recovery 23 frames
    fail and the map is rebuilt 5 times (Sim(3) 1.57 m, measured 2026-12-03, seed 0); with it the frame
    is located by the 5-point pose to the newest keyframe, its baseline from the keyframe's landmarks or
    BA-Net depth (measured 2026-12-04, seed 0: 11 recovered, 7 failed, 33 of 40 frames out, Sim(3) 0.42
    m). Before a first keyframe the view had left was replaced at once (init_restart_2.txt) the last
    seconds had no map and no pose: 13 failed, Sim(3) 0.194 m over fewer frames."""
    frames = _every_fifth_hololens_frame(shared_data)
    config = OdometryConfig(frontend="xfeat", scale_source="learned")
    assert config.tracking.recovery_min_points == 8  # the default (docs/preregistered/tracking_recovery.txt)
    vo = make_odometry(estimator, config)
    est, gt, results = _run(vo, frames)
    recovered = [r for r in results if r.message.startswith("PnP failed: tracked by the 5-point pose")]
    assert vo.stats.recovered == len(recovered) >= 3
    assert all(r.status == TRACKED and r.is_keyframe for r in recovered)
    # Both ways of fixing the baseline were needed (measured: 5 from landmarks, 5 from BA-Net's depth).
    assert any("landmarks)" in r.message for r in recovered)
    assert any("(baseline from BA-Net depth" in r.message for r in recovered)
    assert sum(r.status == FAILED for r in results) <= 16
    assert len(est) >= 28
    sim3, _ = _ate(est, gt, "sim3")
    assert sim3 < 0.65


def test_a_first_keyframe_the_view_has_left_is_replaced_at_once(estimator, shared_data):
    """A hand-held camera seen at 2 frames/s (every 5th TartanAir frame, 38 frames) turns away from the
    first keyframe before 1 deg of parallax. Waiting init_max_frames (30) for it to come back published 5
    of 38 poses (Sim(3) 4.00 m, seed 0); replacing it as soon as the view no longer matches it publishes
    34 (1.23 m; docs/preregistered/init_restart_2.txt)."""
    seq = open_sequence(shared_data / "tartanair_hospital_000-188")
    frames = [seq[i] for i in range(0, len(seq), 5)]
    config = OdometryConfig(frontend="xfeat", scale_source="learned")
    vo = make_odometry(estimator, config)
    est, gt, results = _run(vo, frames)
    restarts = [k for k, r in enumerate(results) if r.message == "first keyframe of a map"]
    # Replaced on the next frame (measured); waiting would have replaced it at frame init_max_frames.
    assert restarts[0] == 0 and 0 < restarts[1] < config.tracking.init_max_frames
    assert vo.stats.init_restarts >= 1
    assert len(est) >= 30
    sim3, _ = _ate(est, gt, "sim3")
    assert sim3 < 2.0


@pytest.mark.parametrize("between", ["match", "flow"])
def test_stopped_camera_holds_still(estimator, kitti06, between):
    """The same frame for 20 frames (a stopped car): no drift, no new keyframes, no NaN. With optical flow
    between keyframes, XFeat does not run on them."""
    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes=between))
    for f in kitti06[:8]:
        vo.process(f.image, f.timestamp, f.camera)
    frame = kitti06[8]
    keyframes_before = None
    positions = []
    for k in range(20):
        r = vo.process(frame.image, frame.timestamp + 0.1 * k, frame.camera)
        assert r.status == TRACKED and np.isfinite(r.T_odom_camera).all()
        positions.append(r.T_odom_camera[:3, 3])
        if k == 1:
            keyframes_before, map_before = r.keyframes, vo.map_size
    assert r.keyframes == keyframes_before
    assert np.ptp(np.array(positions), axis=0).max() < 0.05
    # Nothing accumulates while the camera stands: no keyframe, landmark or scale measurement is added.
    assert vo.map_size == map_before
    assert 2 <= map_before[0] <= vo.tracking.window_keyframes and map_before[1] > 0
    # (the first of the 20 is a real step from frame 7 and may ask for a keyframe)
    assert vo.stats.flow_tracked >= 19 if between == "flow" else vo.stats.flow_tracked == 0


@pytest.mark.parametrize("between", ["match", "flow"])
def test_textureless_views_are_lost_then_recovered_without_a_jump(estimator, kitti06, between):
    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes=between))
    last = None
    for f in kitti06[:10]:
        r = vo.process(f.image, f.timestamp, f.camera)
        last = r.T_odom_camera
    flat = np.full_like(kitti06[10].image, 90)
    for k in range(8):  # a blank wall / the sky / a covered lens
        r = vo.process(flat, kitti06[10].timestamp + 0.01 * k, kitti06[10].camera)
        assert r.T_odom_camera is None or np.allclose(r.T_odom_camera, last, atol=1e-9)
        assert r.state in (LOST, "initialising")
    recovered = None
    for f in kitti06[12:22]:
        r = vo.process(f.image, f.timestamp, f.camera)
        if r.T_odom_camera is not None and r.status == TRACKED:
            recovered = r
    assert recovered is not None
    # The trajectory goes on from the last good pose: no jump back to the origin.
    assert np.linalg.norm(recovered.T_odom_camera[:3, 3]) > 0.5 * np.linalg.norm(last[:3, 3])
    assert vo.stats.lost >= 1


def test_a_rebuilt_map_is_anchored_at_the_constant_velocity_prediction(estimator, kitti06):
    """tracking_rebuild_anchor: after blank frames the map is rebuilt at frame 12, 0.3 s after the last
    tracked frame. `hold` publishes that frame at frame 9's pose; `predict` moves it on at frame 8-9's
    velocity, which is nearer the car's true position, and widens its covariance. Tracking is the same."""
    from banet_vo.odometry.tracking_config import TrackingConfig

    gt0 = np.linalg.inv(kitti06[0].pose)
    found = {}
    for anchor in ("hold", "predict"):
        vo = _vo(estimator, tracking=TrackingConfig(rebuild_anchor=anchor))
        results = [vo.process(f.image, f.timestamp, f.camera) for f in kitti06[:10]]
        flat = np.full_like(kitti06[10].image, 90)
        for k in range(8):
            vo.process(flat, kitti06[10].timestamp + 0.01 * k, kitti06[10].camera)
        rebuilt = vo.process(kitti06[12].image, kitti06[12].timestamp, kitti06[12].camera)
        assert rebuilt.T_odom_camera is not None and rebuilt.is_keyframe
        true = (gt0 @ kitti06[12].pose)[:3, 3]
        found[anchor] = (results[-1], rebuilt, np.linalg.norm(rebuilt.T_odom_camera[:3, 3] - true), vo.stats)
    held_last, held, held_error, held_stats = found["hold"]
    last, moved, moved_error, stats = found["predict"]
    np.testing.assert_allclose(held.T_odom_camera, held_last.T_odom_camera, atol=1e-9)
    assert held_stats.rebuild_predictions == 0 and stats.rebuild_predictions == 1
    np.testing.assert_allclose(last.T_odom_camera, held_last.T_odom_camera, atol=1e-9)  # same tracking
    # three frames of a car at ~1 m per frame: held ~3 m behind, the prediction much nearer
    assert held_error > 2.0 and moved_error < 0.5 * held_error
    # Both say what they do not know: the held pose is ~3 m behind (its covariance grows by what the last
    # velocity could do in the 0.3 s, as across a stamp gap; it stayed as certain as before), the
    # prediction by what that velocity could do in its own extrapolation.
    grown = np.trace(held.pose_covariance[:3, :3]) - np.trace(held_last.pose_covariance[:3, :3])
    assert grown > 3 * 2.0**2  # a standard deviation of 2 m or more on each axis
    assert np.trace(moved.pose_covariance[:3, :3]) > np.trace(last.pose_covariance[:3, :3])


def test_a_map_rebuilt_after_a_gap_widens_the_covariance_once(estimator, kitti06, kitti06_dir):
    """A frame 2 s after the last that the map cannot locate (another street): the gap widens the
    covariance by what the last velocity could do in 2 s, and the map rebuilt on that frame, held at the
    last pose, does not add the same 2 s again."""
    from banet_vo.odometry.timing import gap_covariance

    vo = _vo(estimator)
    results = [vo.process(f.image, f.timestamp, f.camera) for f in kitti06[:10]]
    other = open_sequence(Path(kitti06_dir).parent / "kitti_odom07_000-159")[50]
    t = kitti06[9].timestamp + 2.0
    rebuilt = vo.process(other.image, t, other.camera)
    assert rebuilt.is_keyframe and "first keyframe of a map" in rebuilt.message
    a, b = results[-2], results[-1]
    expected = gap_covariance(a.T_odom_camera, a.stamp, b.T_odom_camera, b.stamp, t - b.stamp)
    grown = rebuilt.pose_covariance[:3, :3] - b.pose_covariance[:3, :3]
    assert np.trace(grown) == pytest.approx(np.trace(expected[:3, :3]), rel=1e-6)


def test_a_second_rebuild_of_one_loss_keeps_growing_the_covariance(estimator, kitti06):
    """Lost after frame 9, the map rebuilt at frame 12 (the pose held), lost again at once and rebuilt at
    frame 20: the held pose's covariance is frame 9's plus what frame 8-9's velocity could do in the whole
    time since, not a sum of pieces, and not grown from the held publication's zero velocity."""
    from banet_vo.odometry.timing import gap_covariance

    vo = _vo(estimator)
    results = [vo.process(f.image, f.timestamp, f.camera) for f in kitti06[:10]]
    flat = np.full_like(kitti06[10].image, 90)
    for k in range(8):
        vo.process(flat, kitti06[10].timestamp + 0.01 * k, kitti06[10].camera)
    first = vo.process(kitti06[12].image, kitti06[12].timestamp, kitti06[12].camera)
    for k in range(8):
        vo.process(flat, kitti06[13].timestamp + 0.01 * k, kitti06[13].camera)
    second = vo.process(kitti06[20].image, kitti06[20].timestamp, kitti06[20].camera)
    assert first.is_keyframe and second.is_keyframe and "first keyframe of a map" in second.message
    np.testing.assert_allclose(second.T_odom_camera, results[-1].T_odom_camera, atol=1e-9)  # still held
    a, b = results[-2], results[-1]
    for held in (first, second):
        expected = (
            b.pose_covariance[:3, :3]
            + gap_covariance(a.T_odom_camera, a.stamp, b.T_odom_camera, b.stamp, held.stamp - b.stamp)[:3, :3]
        )
        assert np.trace(held.pose_covariance[:3, :3]) == pytest.approx(np.trace(expected), rel=1e-6)
    assert np.trace(second.pose_covariance[:3, :3]) > 4 * np.trace(first.pose_covariance[:3, :3]) * 0.9


def test_pure_rotation_gives_rotation_and_no_translation(estimator, kitti06):
    vo = _vo(estimator)
    for f in kitti06[:10]:
        r = vo.process(f.image, f.timestamp, f.camera)
    C0 = r.T_odom_camera
    base = kitti06[9]
    K = base.camera.K
    for k in range(1, 6):  # the camera yaws 0.5 deg per frame about its centre
        R = Rotation.from_euler("y", 0.5 * k, degrees=True).as_matrix()
        H = K @ R.T @ np.linalg.inv(K)  # pixel map of a pure rotation of the camera
        image = cv2.warpPerspective(base.image, H, base.camera.size)
        r = vo.process(image, base.timestamp + 0.1 * k, base.camera)
        assert r.status == TRACKED
    rel = np.linalg.inv(C0) @ r.T_odom_camera
    angle = np.degrees(np.linalg.norm(Rotation.from_matrix(rel[:3, :3]).as_rotvec()))
    assert angle == pytest.approx(2.5, abs=0.3)
    assert np.linalg.norm(rel[:3, 3]) < 0.25  # metres, against 1.2 m per frame of real motion


def test_forward_gap_invents_no_motion(estimator, kitti06):
    vo = _vo(estimator)
    for f in kitti06[:10]:
        r = vo.process(f.image, f.timestamp, f.camera)
    before = r.T_odom_camera[:3, 3]
    f = kitti06[10]
    r = vo.process(f.image, f.timestamp + 10.0, f.camera)  # a 10 s stall, then the next frame
    assert "gap" in r.message
    assert r.T_odom_camera is not None  # located against the map after the stall (measured step 1.14 m)
    # Constant velocity would have put it 120 m ahead; the real step is 1.2 m.
    assert np.linalg.norm(r.T_odom_camera[:3, 3] - before) < 3.0
    cov_after = r.pose_covariance
    assert cov_after is None or np.all(np.isfinite(cov_after))


def test_frames_between_keyframes_followed_by_optical_flow(estimator, kitti06):
    """tracking.between_keyframes flow on the first 30 KITTI 06 frames: the same accuracy bounds as XFeat on
    every frame, XFeat skipped exactly on the frames the flow located, none of them a keyframe, and a frame
    after a forward gap located by XFeat against the map, not by flow."""
    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow"))
    calls = []
    extract = vo.extractor.extract
    vo.extractor.extract = lambda *a, **k: calls.append(1) or extract(*a, **k)
    est, gt, results = _run(vo, kitti06[:30])
    _assert_first_30_kitti06_frames(est, gt)
    flowed = vo.stats.flow_tracked
    assert flowed >= 3
    assert len(calls) == 30 - flowed
    assert sum(r.is_keyframe for r in results) == vo.stats.keyframes <= 30 - flowed
    f = kitti06[30]
    r = vo.process(f.image, f.timestamp + 5.0, f.camera)
    assert "gap" in r.message and vo.stats.flow_tracked == flowed and len(calls) == 31 - flowed


def _run_mapping_settled(vo, frames):
    """_run, with the mapping thread's work finished before each next frame (settle(): a camera slower
    than the mapping): a keyframe asked for at one frame joins the map at the next, whatever the machine's
    speed."""
    est, gt, results = [], [], []
    for f in frames:
        e, g, r = _run(vo, [f])
        est += e
        gt += g
        results += r
        vo.settle()
        assert vo._mapping_job is None or vo._mapping_job.future.done()
    return est, gt, results


def test_settled_background_mapping_is_repeatable(estimator, kitti06):
    """settle() makes a run with the mapping thread repeatable: the same poses, bit for bit."""
    runs = []
    for _ in range(2):
        vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow", mapping="background"))
        est, _, _ = _run_mapping_settled(vo, kitti06[:16])
        runs.append(np.stack(est))
        assert vo.stats.keyframes_mapped >= 1
        vo.close()
    np.testing.assert_array_equal(*runs)


def test_a_keyframe_the_mapping_thread_fails_to_make_is_made_in_line_instead(estimator, kitti06, caplog):
    """XFeat raising in the mapping thread (every keyframe it is asked for) must not starve the map: each
    dropped keyframe is warned about, and the next frame that asks for one makes it in line (XFeat on that
    frame), so keyframes keep coming, the ground plane's scale is measured, and every frame after the first
    map has a pose. (Before the in-line fallback the map got keyframes only from the 5-point recovery when
    PnP on the stale keyframe failed: 4 keyframes and 16 drops in 24 frames, no scale measured.)"""
    import threading

    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow", mapping="background"))
    extract = vo.extractor.extract

    def failing_in_the_thread(*args, **kwargs):
        if threading.current_thread().name.startswith("banet_vo_mapping"):
            raise RuntimeError("simulated XFeat failure in the mapping thread")
        return extract(*args, **kwargs)

    vo.extractor.extract = failing_in_the_thread
    with caplog.at_level("WARNING", logger="banet_vo.odometry.keyframe_vo"):
        est, gt, results = _run_mapping_settled(vo, kitti06[:30])
    vo.close()
    st = vo.stats
    assert st.keyframes_mapped == 0 and st.mapping_dropped >= 3
    assert (
        len([m for m in caplog.messages if "not added: XFeat failed: simulated" in m]) == st.mapping_dropped
    )
    first_map = next(i for i, r in enumerate(results) if r.status == TRACKED)
    assert all(r.has_pose for r in results[first_map:])
    made = [i for i, r in enumerate(results) if r.is_keyframe and i > first_map]
    assert len(made) >= st.mapping_dropped and st.recovered == 0  # one in line after each drop
    assert vo.scale is not None
    sim3, scale = _ate(est, gt, "sim3")
    se3, _ = _ate(est, gt, "se3")
    assert sim3 < 0.45 and se3 < 1.2 and 0.8 < scale < 1.25  # measured 0.352 / 0.824 m, 1.08


def test_keyframes_made_in_the_mapping_thread(estimator, kitti06):
    """tracking.mapping background on the first 30 KITTI 06 frames: the same accuracy bounds; every frame
    after the first map located by optical flow or, when the flow fails, by XFeat inline; each keyframe the
    flow asks for made in the thread (XFeat once per such keyframe, never published as a keyframe) and its
    depth coming back once with its stamp; close() stops the thread."""
    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow", mapping="background"))
    calls = []
    extract = vo.extractor.extract
    vo.extractor.extract = lambda *a, **k: calls.append(1) or extract(*a, **k)
    est, gt, results = _run_mapping_settled(vo, kitti06[:30])
    _assert_first_30_kitti06_frames(est, gt)
    st = vo.stats
    assert st.keyframes_mapped >= 3 and st.mapping_dropped == 0
    assert st.keyframes == sum(r.is_keyframe for r in results) + st.keyframes_mapped
    in_the_making = vo._mapping_job is not None  # asked for at the last frame, done, not yet added
    assert len(calls) == 30 - st.flow_tracked + st.keyframes_mapped + in_the_making
    mapped = {kf.stamp for kf in vo._keyframes} - {r.stamp for r in results if r.is_keyframe}
    late = [r.depth_stamp for r in results if r.depth is not None and r.depth_stamp is not None]
    assert len(set(late)) == len(late) and mapped & set(late)
    assert all(r.depth_stamp < r.stamp for r in results if r.depth_stamp is not None)
    vo.close()
    assert vo._mapping_pool is None


def test_background_mapping_publishes_what_the_flow_locates_even_when_weak(estimator, kitti06):
    """Tracking that always counts as weak (what busy_keyframe defer would not put off) changes nothing in
    background mapping: each frame the flow locates is published from it, the keyframes it asks for made
    in the thread."""
    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow", mapping="background"))
    vo._weak = lambda last, tracked: True
    est, gt, _ = _run_mapping_settled(vo, kitti06[:30])
    _assert_first_30_kitti06_frames(est, gt)
    assert vo.stats.keyframes_mapped >= 3
    vo.close()


def test_flow_follows_a_caller_that_decodes_every_frame_into_one_buffer(estimator, kitti06):
    """A gray frame is kept as the flow's previous image: it must be a copy, or a caller that reuses one
    buffer turns it into the current frame (no motion, no keyframe ever due: the odometry stood still)."""
    runs = []
    for reuse in (False, True):
        vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow"))
        buffer = np.empty_like(kitti06[0].image)
        poses = []
        for f in kitti06[:16]:
            image = f.image
            if reuse:
                buffer[...] = image
                image = buffer
            r = vo.process(image, f.timestamp, f.camera)
            poses.append(np.full((4, 4), np.nan) if r.T_odom_camera is None else r.T_odom_camera)
        runs.append((np.stack(poses), vo.stats.flow_tracked, vo.stats.keyframes))
    (fresh, fresh_flowed, fresh_kfs), (reused, reused_flowed, reused_kfs) = runs
    assert fresh_flowed >= 3 and (reused_flowed, reused_kfs) == (fresh_flowed, fresh_kfs)
    np.testing.assert_array_equal(reused, fresh)


def test_a_matcher_swap_while_a_keyframe_is_mapped_restarts_the_tracks_at_it(estimator, kitti06):
    """The swap adds the keyframe in the making first; the flow's tracks must then start at that keyframe's
    keypoints, as after any mapped keyframe (they stayed at the one before: parallax and tracked ratio were
    measured against the wrong keyframe)."""
    from banet_vo.frontend.xfeat import wheel_state

    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow", mapping="background"))
    for f in kitti06[:40]:
        vo.process(f.image, f.timestamp, f.camera)
        if vo._mapping_job is not None:
            break
    assert vo._mapping_job is not None, "no keyframe asked of the mapping thread in 40 frames"
    vo.settle()
    before = vo._keyframes[-1].id
    assert vo.swap_matcher(wheel_state(), 1).applied
    kf = vo._keyframes[-1]
    assert kf.id != before  # the mapped keyframe joined
    seen = kf.landmarks >= 0
    at_kf = dict(zip(kf.landmarks[seen].tolist(), kf.features.keypoints[seen], strict=True))
    tracks = vo._flow
    started = np.isfinite(tracks.at_keyframe[:, 0])
    restarted = [
        lm in at_kf and np.allclose(at_kf[lm], px)
        for lm, px in zip(tracks.landmarks[started], tracks.at_keyframe[started], strict=True)
    ]
    assert len(restarted) >= 20 and np.mean(restarted) > 0.9
    vo.close()


def test_a_keyframe_in_the_making_is_dropped_with_its_map(estimator, kitti06):
    """A reset while the mapping thread works: the thread is let finish, its keyframe counted as dropped
    and never added; the next frames build a new map."""
    vo = _vo(estimator, tracking=TrackingConfig(between_keyframes="flow", mapping="background"))
    asked = None
    for i, f in enumerate(kitti06[:30]):
        vo.process(f.image, f.timestamp, f.camera)
        if vo._mapping_job is not None:
            asked = i
            break
    assert asked is not None, "no keyframe asked of the mapping thread in 30 frames"
    job = vo._mapping_job
    vo.reset()
    assert vo._mapping_job is None and job.future.done() and not vo._keyframes
    assert vo.stats.mapping_dropped == 1 and vo.stats.keyframes_mapped == 0
    _, _, results = _run_mapping_settled(vo, kitti06[asked + 1 : asked + 16])
    assert vo._initialised and results[-1].status == "tracked"
    vo.close()


def test_background_banet_returns_each_keyframe_depth_once_with_its_stamp(estimator, kitti06):
    """background_banet on the first 30 KITTI 06 frames: the same accuracy bounds; no result carries its
    own depth, each keyframe's depth (but the first of a map, which has no pair) comes back once, with a
    later result and the keyframe's stamp; close() stops the thread."""
    vo = _vo(estimator, background_banet=True)
    est, gt, results = _run(vo, kitti06[:30])
    vo.close()
    assert vo._banet_pool is None
    _assert_first_30_kitti06_frames(est, gt)
    keyframes = [r.stamp for r in results if r.is_keyframe]
    late = [r for r in results if r.depth is not None]
    assert all(r.depth_stamp is not None and r.depth_stamp < r.stamp for r in late)
    stamps = [r.depth_stamp for r in late]
    assert len(set(stamps)) == len(stamps) and set(stamps) <= set(keyframes[1:])
    assert len(stamps) >= len(keyframes) - 2  # the last keyframe's may still be running at the end
    for r in late:
        assert np.isfinite(r.depth).all() and (r.depth >= 0).all() and (r.depth > 0).mean() > 0.5


def test_a_reset_waits_for_the_background_banet_pass_it_drops(estimator, kitti06):
    """background_banet: a reset while BA-Net runs in its thread drops that keyframe's depth, but waits for
    the pass to end (before, it was forgotten while running: a next estimator pass could run beside it and
    settle() no longer waited for it)."""

    class Slow:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def estimate(self, *args, **kwargs):
            time.sleep(0.5)
            return self._inner.estimate(*args, **kwargs)

    vo = _vo(Slow(estimator), background_banet=True)
    try:
        frames = iter(kitti06[:20])
        while vo._banet_job is None:
            f = next(frames)
            vo.process(f.image, f.timestamp, f.camera)
        future = vo._banet_job[2]
        vo.reset(reason="test")
        assert future.done() and vo._banet_job is None
        results = [vo.process(f.image, f.timestamp, f.camera) for f in frames]
        assert results[-1].has_pose
    finally:
        vo.close()


class _CountingEstimator:
    """The real estimator, counting the pairs it is asked for."""

    def __init__(self, estimator):
        self._estimator, self.pairs = estimator, 0

    def __getattr__(self, name):
        return getattr(self._estimator, name)

    def estimate(self, frame, prev, seed=None):
        self.pairs += 1
        return self._estimator.estimate(frame, prev, seed)


def test_banet_min_interval_runs_banet_on_keyframes_that_far_apart(estimator, kitti06):
    """tracking.banet_min_interval 0.5 s on the first 30 KITTI 06 frames (ground plane, which BA-Net does
    not feed): the same accuracy bounds; depth only on keyframes at least 0.5 s after the last one with
    depth, BA-Net asked for exactly those, every other keyframe with a pair counted as skipped."""
    counting = _CountingEstimator(estimator)
    vo = _vo(counting, tracking=TrackingConfig(banet_min_interval=0.5))
    est, gt, results = _run(vo, kitti06[:30])
    _assert_first_30_kitti06_frames(est, gt)
    with_depth = [r.stamp for r in results if r.depth is not None]
    assert all(r.is_keyframe for r in results if r.depth is not None)
    assert len(with_depth) >= 3 and np.all(np.diff(with_depth) >= 0.5)
    keyframes = sum(r.is_keyframe for r in results)
    assert counting.pairs == len(with_depth)
    assert vo.stats.banet_skipped >= 3 and vo.stats.banet_skipped + len(with_depth) == keyframes - 1


def test_banet_min_interval_waits_for_the_first_learned_scale(estimator):
    """With the learned scale, BA-Net runs on every keyframe until its first measurement; then at most one
    per interval, counted from the last keyframe it ran on; a new map starts the count afresh; 0 is every
    keyframe."""
    tracking = TrackingConfig(banet_min_interval=1)
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source="learned", tracking=tracking))
    assert vo._banet_due(0.0) and vo._banet_due(0.1)  # no measurement yet
    vo._scale.add(2.0)
    assert not vo._banet_due(0.5) and not vo._banet_due(1.05) and vo._banet_due(1.1)
    assert not vo._banet_due(2.0) and vo._banet_due(2.1)
    vo.reset()
    vo._scale.add(2.0)
    assert vo._banet_due(0.0) and not vo._banet_due(0.2)
    every = make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source="none"))
    assert all(every._banet_due(t) for t in (0.0, 0.01, 0.02))


def test_banet_min_interval_in_the_mapping_thread(estimator, kitti06):
    """The same interval with keyframes made in the mapping thread: BA-Net is asked only for the keyframes
    that get depth, and the skipped ones still join the map."""
    counting = _CountingEstimator(estimator)
    tracking = TrackingConfig(between_keyframes="flow", mapping="background", banet_min_interval=0.5)
    vo = _vo(counting, tracking=tracking)
    est, gt, results = _run_mapping_settled(vo, kitti06[:30])
    vo.close()
    _assert_first_30_kitti06_frames(est, gt)
    assert vo.stats.keyframes_mapped >= 3 and vo.stats.banet_skipped >= 1
    depth_stamps = [r.depth_stamp or r.stamp for r in results if r.depth is not None]
    assert counting.pairs == len(depth_stamps) and np.all(np.diff(depth_stamps) >= 0.5)


def test_out_of_order_and_bag_loop(estimator, kitti06):
    vo = _vo(estimator)
    for f in kitti06[:4]:
        vo.process(f.image, f.timestamp, f.camera)
    r = vo.process(kitti06[4].image, kitti06[3].timestamp - 0.01, kitti06[4].camera)
    assert r.status == OUT_OF_ORDER
    tid = vo.trajectory_id
    r = vo.process(kitti06[0].image, kitti06[0].timestamp - 5.0, kitti06[0].camera)
    assert vo.trajectory_id == tid + 1 and np.allclose(r.T_odom_camera, np.eye(4))


def test_camera_change_rebuilds_the_map_and_keeps_the_pose(estimator, kitti06):
    vo = _vo(estimator)
    for f in kitti06[:8]:
        r = vo.process(f.image, f.timestamp, f.camera)
    before = r.T_odom_camera
    f = kitti06[8]
    half = cv2.resize(f.image, (f.camera.width // 2, f.camera.height // 2), interpolation=cv2.INTER_AREA)
    r = vo.process(half, f.timestamp, f.camera.resized(f.camera.width // 2, f.camera.height // 2))
    assert r.status == "camera_changed"
    np.testing.assert_allclose(r.T_odom_camera, before)


def test_tracking_config_is_validated():
    with pytest.raises(ValueError, match="window_keyframes"):
        TrackingConfig(window_keyframes=2)
    with pytest.raises(ValueError, match="track_keyframes"):
        TrackingConfig(track_keyframes=0)
    with pytest.raises(ValueError, match=r"rebuild_anchor must be one of \('hold', 'predict'\)"):
        TrackingConfig(rebuild_anchor="extrapolate")
    with pytest.raises(ValueError, match="mapping background needs between_keyframes flow"):
        TrackingConfig(mapping="background")


def test_same_input_gives_the_same_trajectory(estimator, kitti06):
    """Reproducible: RANSAC, matching and the window BA are deterministic for the same frames."""
    runs = []
    for _ in range(2):
        vo = _vo(estimator)
        runs.append([vo.process(f.image, f.timestamp, f.camera).T_odom_camera for f in kitti06[:12]])
    for a, b in zip(*runs, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


def _run(vo, frames):
    est, gt, results = [], [], []
    for f in frames:
        r = vo.process(f.image, f.timestamp, f.camera)
        results.append(r)
        if r.T_odom_camera is not None:
            R = r.T_odom_camera[:3, :3]
            assert np.isfinite(r.T_odom_camera).all()
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)  # merged corrections stay rigid
            est.append(r.T_odom_camera)
            gt.append(f.pose)
    return est, gt, results


def test_camera_height_from_the_extrinsic_gives_the_same_metric_trajectory(estimator, kitti06):
    """camera_height 0 with the camera 1.65 m up in a base frame on the ground (base_footprint) is the
    same odometry as camera_height 1.65: equal camera poses (T_odom_camera is in the first camera's optical
    frame, so the mounting's translation does not enter it), metric scale measured from the road in both."""
    T_bc = OdometryConfig().T_base_camera.copy()
    T_bc[2, 3] = KITTI_HEIGHT
    runs = []
    for config in (
        OdometryConfig(frontend="xfeat", scale_source="ground_plane", camera_height=KITTI_HEIGHT),
        OdometryConfig(frontend="xfeat", scale_source="ground_plane", T_base_camera=T_bc),
    ):
        _, _, results = _run(make_odometry(estimator, config), kitti06[:14])
        runs.append(
            [(r.status, r.scale_source, r.T_odom_camera) for r in results if r.T_odom_camera is not None]
        )
    assert len(runs[0]) == len(runs[1]) >= 12
    assert runs[0][-1][1] == runs[1][-1][1] == "ground_plane"  # the road was measured
    for (status_a, _, C_a), (status_b, _, C_b) in zip(*runs, strict=True):
        assert status_a == status_b
        np.testing.assert_allclose(C_a, C_b, atol=1e-9)
    assert np.linalg.norm(runs[1][-1][2][:3, 3]) > 5.0  # metres driven, not map units


def _resized(frames, factor: float):
    """The frames as a camera `factor` times finer (or coarser) would see them (real_clips' resize rule)."""
    from banet_vo.evaluation.real_clips import resized_frame

    return [resized_frame(f, f.camera.scaled(factor)) for f in frames]


def test_a_higher_resolution_camera_with_the_feature_cap(estimator, kitti06):
    """KITTI 06 at 1.5x its resolution (1839x555, a stand-in for a finer camera) with
    tracking_feature_max_pixels 500,000: XFeat works at about the native size, the keypoints come back in
    the camera's pixels and the pixel thresholds are meant in the working pixels (docs/frontend.md,
    "Cameras of other resolutions"), so the first 30 frames meet the native run's thresholds. Measured
    2026-12-05: Sim(3) 0.147 m, SE(3) 0.361 m, scale 0.97, 30 of 30 frames (without the cap 0.275 / 0.354 m,
    29 frames; native 0.296 / 0.544 m)."""
    frames = _resized(kitti06[:30], 1.5)
    vo = _vo(estimator, tracking=TrackingConfig(feature_max_pixels=500_000))
    est, gt, _ = _run(vo, frames)
    assert vo._px == pytest.approx(math.sqrt(1839 * 555 / 500_000), rel=0.01)
    assert vo._ba.config.outlier_px == pytest.approx(3.0 * vo._px)  # the window BA's limits scale too
    assert vo._ba.config.pixel_sigma == pytest.approx(vo.tracking.pixel_sigma * vo._px)
    _assert_first_30_kitti06_frames(est, gt)


def test_a_lower_resolution_camera_with_the_feature_floor(estimator, kitti06):
    """KITTI 06 at half its resolution (620x188, a stand-in for a coarser camera) with
    tracking_feature_min_pixels 486,400: XFeat works on the image upscaled ~2.07x, the keypoints come back
    in the camera's pixels at a finer step, the pixel thresholds stay in camera pixels, and the first 30
    frames meet the native run's thresholds. Measured 2026-12-06: Sim(3) 0.071 m, SE(3) 0.188 m, scale
    1.02, 30 of 30 frames; without the floor 0.184 / 1.494 m, scale 1.17 (docs/frontend.md, "Cameras of
    other resolutions")."""
    frames = _resized(kitti06[:30], 0.5)
    vo = _vo(estimator, tracking=TrackingConfig(feature_min_pixels=486_400))
    est, gt, _ = _run(vo, frames)
    assert vo._px == 1.0  # upscaling adds no detail: the thresholds keep camera pixels
    assert vo._keyframes[-1].features.scale == pytest.approx((0.483, 0.483), abs=2e-3)
    _assert_first_30_kitti06_frames(est, gt)


def test_a_small_camera_is_told_about_the_feature_floor_once(estimator, kitti06, caplog):
    """KITTI at half size, 613x185 (at most SMALL_CAMERA_PIXELS), with XFeat at its own size: one warning
    names tracking_feature_min_pixels (a user whose 360x240 camera gave 12x the HoloLens error got no
    word); none with the floor set or at full size."""
    from banet_vo.odometry.tracking_config import SMALL_CAMERA_FEATURE_PIXELS

    def warnings_for(frames, **tracking) -> list[str]:
        caplog.clear()
        vo = _vo(estimator, tracking=TrackingConfig(**tracking))
        try:
            with caplog.at_level(logging.WARNING, logger="banet_vo.odometry.keyframe_vo"):
                for f in frames:
                    vo.process(f.image, f.timestamp, f.camera)
                vo.reset(reason="test")
                vo.process(frames[0].image, 100.0, frames[0].camera)
        finally:
            vo.close()
        return [r.getMessage() for r in caplog.records if "small camera" in r.getMessage()]

    small = _resized(kitti06[:4], 0.5)
    said = warnings_for(small)
    assert len(said) == 1 and said[0].startswith("a small camera (613x185)")
    assert f"tracking_feature_min_pixels:={SMALL_CAMERA_FEATURE_PIXELS}" in said[0]
    assert warnings_for(small, feature_min_pixels=SMALL_CAMERA_FEATURE_PIXELS) == []
    assert warnings_for(kitti06[:2]) == []


@pytest.fixture(scope="module")
def background_run(estimator, kitti06):
    """The first 30 KITTI 06 frames with window BAs in the worker process, merged as they finish; the
    pipeline is closed afterwards. Returns (vo, estimated poses, true poses)."""
    vo = _vo(estimator, background_ba=True)
    try:
        est, gt, _ = _run(vo, kitti06[:30])
        assert vo._background._process is not None  # the worker did run
    finally:
        vo.close()
    return vo, est, gt


def test_background_ba_tracks_kitti06(background_run):
    """The worker's solves are merged and the pipeline tracks. Which frame each result lands on depends on
    the machine's timing, so the Sim(3) figure varies run to run: measured 2026-12-05 (shipped model, 2
    cores) 0.351-0.525 m in 14 runs, alone and beside two busy loops, and 0.637 m once in CI (in line:
    0.296 m). The bound (0.9 m) catches a broken merge, not the cost of the lag: that is pinned down,
    repeatably, by the keyframe_join tests below (HeldBundleAdjuster)."""
    vo, est, gt = background_run
    assert vo._background._process is None  # closed
    assert vo.stats.window_ba_merged >= 2
    assert vo.stats.window_ba_merged <= vo.stats.keyframes
    assert len(est) >= 27
    sim3, _ = _ate(est, gt, "sim3")
    assert sim3 < 0.9


def test_a_keyframe_is_deferred_while_the_window_solves_unless_tracking_is_weak(estimator, background_run):
    """tracking.busy_keyframe: with "wait" a wanted keyframe is always made; with "defer" it waits while a
    background solve is running, unless fewer than a quarter (half of keyframe_tracked_ratio 0.5) of the
    newest keyframe's landmarks are tracked. The rule is asked of the state the worker run left."""
    assert TrackingConfig().busy_keyframe == "defer"  # the default since busy_keyframe.txt
    vo, _, _ = background_run
    last = vo._keyframes[-1]
    landmarks = int((last.landmarks >= 0).sum())
    try:
        vo._ba_job = vo._window_job()  # a solve in flight, as far as the rule can tell
        deferred = vo.stats.keyframes_deferred
        assert vo._defer_keyframe(last, landmarks) and vo.stats.keyframes_deferred == deferred + 1
        assert vo._defer_keyframe(last, math.ceil(0.25 * landmarks))
        assert not vo._defer_keyframe(last, int(0.25 * landmarks) - 1)  # weak: made at once
        vo._ba_job = None
        assert not vo._defer_keyframe(last, landmarks)  # nothing solving
    finally:
        vo._ba_job = None
    waiting = _vo(estimator, background_ba=True, tracking=TrackingConfig(busy_keyframe="wait"))
    try:
        waiting._ba_job = object()
        assert not waiting._defer_keyframe(last, landmarks)
        waiting._ba_job = None
    finally:
        waiting.close()


def _held_worker(hold_frames: int):
    """backend.background.HeldBundleAdjuster (each window solved in line, its result taken hold_frames
    frames later, or at once by a caller that waits), recording the keyframe ids of every window."""
    from banet_vo.backend.background import HeldBundleAdjuster

    worker = HeldBundleAdjuster(hold_frames)
    worker.windows = []
    submit = worker.submit

    def recording(camera, config, poses, *rest):
        worker.windows.append(set(poses))
        submit(camera, config, poses, *rest)

    worker.submit = recording
    return worker


def _held_vo(estimator, worker, tracking):
    config = OdometryConfig(
        frontend="xfeat",
        scale_source="ground_plane",
        camera_height=KITTI_HEIGHT,
        background_ba=True,
        tracking=tracking,
    )
    return make_odometry(estimator, config, window_ba_worker=worker)


def _record_joins(vo) -> list:
    """Wraps vo's BA merge: for each keyframe that joined after the merged window was built, (its id, its
    pose before the merge, after it, the merge's correction)."""
    joined = []
    apply_ba = vo._apply_ba

    def merged(result, job, frames_moved):
        newer = [(kf, kf.T_wc.copy()) for kf in vo._keyframes if kf.id > max(job.poses)]
        correction = apply_ba(result, job, frames_moved)
        joined.extend((kf.id, before, kf.T_wc.copy(), correction) for kf, before in newer)
        return correction

    vo._apply_ba = merged
    return joined


@pytest.mark.parametrize("join", ["solved", "at_once"])
def test_a_keyframe_joins_a_window_still_solving_only_with_keyframe_join_at_once(estimator, kitti06, join):
    """tracking.keyframe_join with background_ba, each window's result taken two frames after its submit
    (backend.background.HeldBundleAdjuster): "solved" waits for the solve before a keyframe joins; "at_once"
    never waits, and a keyframe that joined meanwhile moves with the newest solved keyframe's correction when
    the solve is merged (as the frames located meanwhile do), then enters the next window. Measured
    2026-12-05 (29 of 30 frames, busy_keyframe wait so that every keyframe asked for is made): Sim(3) 0.381 m
    in 25 windows, 21 of them waited for (solved), 0.313 m in 14 windows with 25 keyframes joined early
    (at_once)."""
    from banet_vo.geometry.rigid import nearest_rigid

    assert TrackingConfig().keyframe_join == "at_once"  # since keyframe_join_live.txt
    tracking = TrackingConfig(busy_keyframe="wait", keyframe_join=join)  # every wanted keyframe is made
    held = _held_worker(2)
    vo = _held_vo(estimator, held, tracking)
    joined = _record_joins(vo)
    est, gt = [], []
    for f in kitti06[:30]:
        held.next_frame()
        r = vo.process(f.image, f.timestamp, f.camera)
        if r.T_odom_camera is not None:
            est.append(r.T_odom_camera)
            gt.append(f.pose)
    assert held.submitted >= 8 and len(est) >= 27
    assert vo.stats.window_ba_merged == held.submitted - (vo._ba_job is not None)  # all but one in flight
    assert _ate(est, gt, "sim3")[0] < 0.6
    if join == "solved":
        assert held.waits >= 3 and not joined
        return
    assert held.waits == 0 and len(joined) >= 3
    for kf_id, before, after, correction in joined:
        np.testing.assert_allclose(after, nearest_rigid(correction @ before), atol=1e-9)
        assert any(kf_id in ids for ids in held.windows), "a keyframe that joined never entered a window"
    assert any(not np.allclose(c, np.eye(4), atol=1e-6) for _, _, _, c in joined)  # the solves did move them


@pytest.mark.parametrize("join", ["solved", "at_once"])
def test_a_mapped_keyframe_joins_a_window_still_solving_only_with_keyframe_join_at_once(
    estimator, kitti06, join
):
    """The PTAM-style split (tracking_mapping background) with background_ba, each result taken two frames
    after its submit and the mapping thread settled after each frame: a keyframe the mapping thread made
    joins while a window still solves only with keyframe_join at_once, and moves with the solve's
    correction. Measured 2026-12-05 (29 of 30 frames, 13-15 keyframes mapped): Sim(3) 0.659 m (solved),
    0.506 m (at_once)."""
    from banet_vo.geometry.rigid import nearest_rigid

    tracking = TrackingConfig(between_keyframes="flow", mapping="background", keyframe_join=join)
    held = _held_worker(2)
    vo = _held_vo(estimator, held, tracking)
    joined = _record_joins(vo)
    est, gt = [], []
    try:
        for f in kitti06[:30]:
            held.next_frame()
            r = vo.process(f.image, f.timestamp, f.camera)
            vo.settle()
            if r.T_odom_camera is not None:
                est.append(r.T_odom_camera)
                gt.append(f.pose)
    finally:
        vo.close()
    assert vo.stats.keyframes_mapped >= 3 and len(est) >= 27
    assert _ate(est, gt, "sim3")[0] < 0.8
    assert held.waits == 0  # the tracking thread never waits for a solve in the split
    if join == "solved":
        assert not joined
        return
    assert len(joined) >= 2
    for _, before, after, correction in joined:
        np.testing.assert_allclose(after, nearest_rigid(correction @ before), atol=1e-9)


def test_background_ba_survives_a_killed_worker(estimator, kitti06, caplog):
    """Killed with a window BA running, the worker's loss is found when its result is due: that window and
    the later ones are solved in line (an error logged). Killed while idle and already gone at the next
    window, a new worker takes it (BackgroundBundleAdjuster.submit). Which one happens depends on timing;
    either way tracking goes on."""
    vo = _vo(estimator, background_ba=True)
    try:
        _run(vo, kitti06[:12])
        killed = vo._background._process
        killed.kill()
        with caplog.at_level("ERROR", logger="banet_vo.odometry.keyframe_vo"):
            _, _, results = _run(vo, kitti06[12:30])
        replaced = vo._background._process not in (None, killed)
    finally:
        vo.close()
    fell_back = vo._inline_ba and any("solved in line from now on" in m for m in caplog.messages)
    assert fell_back != replaced, (fell_back, replaced)  # exactly one of the two
    assert sum(r.status == TRACKED for r in results) >= 15


def test_banet_pose_factors_enter_the_window(estimator, kitti06):
    """banet_pose_factor: BA-Net's keyframe-pair pose becomes a factor between consecutive keyframes of
    the window, in map units; "rotation" frees its translation. Off ("none") by default (its figures:
    docs/preregistered/banet_pose_factor.txt)."""
    assert OdometryConfig().banet_pose_factor == "none"
    with pytest.raises(ValueError, match="banet_pose_factor"):
        OdometryConfig(banet_pose_factor="both")
    # full holds BA-Net's translation in metres: in a map whose unit is its first baseline it would drag
    # the window's scale toward BA-Net's
    with pytest.raises(ValueError, match="banet_pose_factor full needs a metric scale"):
        OdometryConfig(frontend="xfeat", scale_source="none", banet_pose_factor="full")
    assert OdometryConfig(frontend="xfeat", scale_source="none", banet_pose_factor="rotation")
    vo = _vo(estimator, banet_pose_factor="rotation")
    est, _, _ = _run(vo, kitti06[:12])
    assert len(est) >= 10
    factors = vo._banet_factors()
    assert factors, "no BA-Net factor in the window"
    ids = [kf.id for kf in vo._keyframes]
    s = vo.scale
    for f in factors:
        assert ids.index(f.j) == ids.index(f.i) + 1
        _, T_metric, cov = next(kf.banet_pose for kf in vo._keyframes if kf.id == f.j)
        np.testing.assert_allclose(f.T_i_j[:3, :3], T_metric[:3, :3])
        np.testing.assert_allclose(f.T_i_j[:3, 3], T_metric[:3, 3] / s)
        np.testing.assert_allclose(f.covariance[:3, :3], np.eye(3) * 1e6)
        np.testing.assert_allclose(f.covariance[3:, 3:], cov[3:, 3:])
        assert np.all(f.covariance[:3, 3:] == 0)
    vo.config = OdometryConfig(**{**vars(vo.config), "banet_pose_factor": "none"})
    assert vo._banet_factors() == []


def test_background_ba_priority_reaches_the_worker(estimator):
    """background_ba_priority (read at start) is the priority of the worker the odometry starts."""
    for priority in ("normal", "idle"):
        vo = _vo(estimator, background_ba=True, background_ba_priority=priority)
        assert vo._background.priority == priority
        vo.close()


def test_bad_input_is_a_valueerror_and_a_failure_inside_is_not(estimator, kitti06, monkeypatch):
    """An image XFeat cannot take is refused as bad input (ValueError) before any state changes; a
    ValueError from inside once the frame is checked (here numpy's LinAlgError from the tracking) is the
    odometry's own failure and comes as a RuntimeError, so the node counts it as an error, not as a bad
    image."""
    vo = _vo(estimator)
    try:
        with pytest.raises(ValueError, match="32x32"):
            vo.process(np.zeros((20, 20), np.uint8), 0.0, kitti06[0].camera.resized(20, 20))
        assert vo.stats.frames == 0
        _run(vo, kitti06[:4])

        def singular(*args, **kwargs):
            np.linalg.inv(np.zeros((3, 3)))

        monkeypatch.setattr(vo, "_track", singular)
        f = kitti06[4]
        with pytest.raises(RuntimeError, match="LinAlgError") as failed:
            vo.process(f.image, f.timestamp, f.camera)
        assert isinstance(failed.value.__cause__, np.linalg.LinAlgError)
    finally:
        vo.close()


def test_background_ba_turned_off_stops_its_worker_and_on_again_starts_one(estimator, kitti06):
    """background_ba is settable at run time: turned off, the running window is merged and the worker
    process ends at the next window (it would sit idle); turned on again, a new worker takes the windows."""
    vo = _vo(estimator, background_ba=True)
    try:
        _run(vo, kitti06[:8])
        first = vo._background._process
        assert first is not None and first.poll() is None
        vo.config = dataclasses.replace(vo.config, background_ba=False)
        _run(vo, kitti06[8:14])
        assert vo._background._process is None and first.poll() is not None
        vo.config = dataclasses.replace(vo.config, background_ba=True)
        est, _, _ = _run(vo, kitti06[14:20])
        assert vo._background._process not in (None, first) and len(est) == 6
    finally:
        vo.close()


def test_background_ba_falls_back_in_line_when_the_worker_refuses_a_job(estimator, kitti06, caplog):
    vo = _vo(estimator, background_ba=True)

    def refuse(*args, **kwargs):
        raise RuntimeError("window BA worker does not take jobs: broken pipe")

    vo._background.submit = refuse
    try:
        with caplog.at_level("ERROR", logger="banet_vo.odometry.keyframe_vo"):
            est, _, _ = _run(vo, kitti06[:15])
    finally:
        vo.close()
    assert vo._inline_ba and len(est) >= 13
    assert any("solved in line from now on" in m for m in caplog.messages)


@pytest.mark.parametrize("worker_goes_on", [False, True], ids=["worker lost", "solve failed"])
def test_a_window_that_fails_in_the_worker_and_in_line_leaves_nothing_pending(
    estimator, kitti06, worker_goes_on
):
    """The worker reports a failure and the same window fails in line too: that frame raises (the node
    counts it as an error) and no window is left pending (one would never come back from a closed worker,
    and would hold keyframes off as a busy window does), so the odometry goes on. A worker that is gone
    leaves the next windows to be solved in line; one that only failed to solve (WindowSolveFailed) gets
    the next windows again, so a live node keeps its speed."""
    from banet_vo.backend.background import HeldBundleAdjuster, WindowSolveFailed

    worker = HeldBundleAdjuster(2)
    vo = _vo(estimator, window_ba_worker=worker, background_ba=True)
    frames = iter(kitti06[:24])
    k = 0
    while vo._ba_job is None or k < 5:  # until a window is being solved in the worker
        f = next(frames)
        worker.next_frame()
        vo.process(f.image, f.timestamp, f.camera)
        k += 1
    polled, solve = worker.poll, vo._ba.solve
    error = WindowSolveFailed if worker_goes_on else RuntimeError

    def fail_once(original, what, error, then=lambda: None):
        def failing(*args, **kwargs):
            setattr(*what, original)
            then()
            raise error(f"simulated: {what[1]} failed")

        return failing

    # As BackgroundBundleAdjuster does, the worker is free again once it has reported the failure.
    worker.poll = fail_once(polled, (worker, "poll"), error, then=worker.discard)
    vo._ba.solve = fail_once(solve, (vo._ba, "solve"), RuntimeError)
    f = next(frames)
    worker.next_frame()
    with pytest.raises(RuntimeError, match="simulated: solve failed"):
        vo.process(f.image, f.timestamp, f.camera)
    assert vo._ba_job is None and vo._inline_ba != worker_goes_on
    solved = []
    vo._ba.solve = lambda *a, **kw: solved.append(1) or solve(*a, **kw)
    submitted = worker.submitted
    for f in frames:
        worker.next_frame()
        r = vo.process(f.image, f.timestamp, f.camera)
        assert r.has_pose
    if worker_goes_on:
        assert not solved and worker.submitted >= submitted + 3 and not vo._inline_ba
    else:
        assert len(solved) >= 3 and worker.submitted == submitted and vo._ba_job is None
    vo.close()


def test_observed_landmarks_are_the_scene_depth_at_their_pixels(estimator, hololens_dir):
    """The tracked landmarks of a real HoloLens frame against its ground-truth depth: one scale factor
    (the learned metric scale's error) explains them all, so pixel, point and pose belong together."""
    seq = open_sequence(hololens_dir)
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat"))
    assert vo.observed_landmarks() is None  # nothing processed yet
    ratios = []
    for k in range(30):
        f = seq[k]
        vo.process(f.image, f.timestamp, f.camera)
        seen = vo.observed_landmarks()
        if seen is None:
            continue
        pixels, z = seen
        assert len(pixels) == len(z) >= 20 and (z > 0).all() and np.isfinite(z).all()
        u, v = np.rint(pixels).astype(int).T
        assert ((u >= 0) & (u < f.camera.width) & (v >= 0) & (v < f.camera.height)).all()
        gt = f.depth[v, u]
        ok = gt > 0
        ratios.append(np.median(z[ok] / gt[ok]))
        if k == 29:  # per point, the spread about that factor: geometry, not noise
            r = z[ok] / gt[ok] / ratios[-1]
            assert np.percentile(r, 10) > 0.7 and np.percentile(r, 90) < 1.3
    vo.close()
    assert len(ratios) >= 20
    assert 0.5 < np.median(ratios) < 2.0  # the learned scale's error on this camera is tens of per cent


@pytest.mark.gpu
def test_cuda_estimator_puts_xfeat_on_the_gpu_and_tracks(estimator, kitti06):
    """With BA-Net on CUDA the features are extracted and matched there too (they stayed on the CPU
    before), and the first 20 KITTI 06 frames are tracked as well as on the CPU. Measured on the CPU
    2026-12-03: 19 poses, Sim(3) 0.277 m, SE(3) 0.528 m (ground plane, 1.65 m)."""
    for est in (estimator, BANetEstimator.from_checkpoint(MODEL, device="cuda")):
        vo = _vo(est)
        est_poses, gt, _ = _run(vo, kitti06[:20])
        assert vo.extractor.device == est.device
        assert len(est_poses) >= 18
        assert _ate(est_poses, gt, "sim3")[0] < 0.5
        assert _ate(est_poses, gt, "se3")[0] < 1.0


@pytest.mark.parametrize(
    ("tracking", "starves"),
    [
        ({}, True),
        ({"max_depth_refusals": 2}, False),
        ({"backing_up_landmarks": "add"}, False),
    ],
)
def test_backing_up_with_a_bound_on_refusals_keeps_the_map_fed(estimator, kitti06, tracking, starves):
    """KITTI 06's first 30 frames driven forward, then backward over the same frames: near things enter at
    the image borders while the tracked landmarks recede, and the lost-scale check refuses every new
    landmark, so by default the map starves. With tracking.max_depth_refusals 2 (opt-in) at most 2
    keyframes in a row are refused and the map keeps its landmarks
    (docs/preregistered/depth_ratio_streak.txt); with backing_up_landmarks add a keyframe that backed up
    adds its nearer landmarks (docs/preregistered/backing_up_landmarks.txt)."""
    refusals = tracking
    tracking = TrackingConfig(**tracking)
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source="none", tracking=tracking))
    frames = kitti06[:30]  # all 51 starve the same way, in 1.7x the time
    order = [*range(len(frames)), *range(len(frames) - 2, -1, -1)]
    fewest = None
    for k, i in enumerate(order):
        r = vo.process(frames[i].image, 0.1 * k, frames[i].camera)
        assert r.T_odom_camera is None or np.isfinite(r.T_odom_camera).all()
        if k >= len(frames):  # the backward pass
            landmarks = vo.map_size[1]
            fewest = landmarks if fewest is None else min(fewest, landmarks)
    print(f"{refusals}: fewest landmarks on the way back {fewest}, {vo.stats.landmarks_refused} refused")
    # Measured (seed 0, 2026-12-06): 582 without a bound, 2,110 with 2, 2,209 adding backed-up landmarks.
    # The default loses ~350 a frame over the last 6 backward frames (2,799 down to 582, the same with 40
    # or 51 frames forward); 1,400 leaves room for two frames' lag.
    assert (fewest < 1400) if starves else (fewest > 1800)
    # Each keyframe the check refused is counted (/diagnostics landmarks_refused). Measured 2026-12-07:
    # 6 by default, 2 with the bound (then one is let through), none adding backed-up landmarks.
    expected = {"max_depth_refusals": range(1, 4), "backing_up_landmarks": range(0, 1)}
    refused = vo.stats.landmarks_refused
    assert refused >= 5 if starves else refused in expected[next(iter(refusals))]


# The frames of KITTI 07 that a live node on 2 cores published (background_ba, bag at 1x, queue 1;
# 2026-12-05): every 2nd-3rd frame, and a 1.1 s stall between frames 74 and 85.
LIVE_KITTI07_FRAMES = (
    *(0, 8, 11, 12, 13, 16, 23, 25, 27, 29, 32, 34, 36, 38, 40, 42, 45, 48, 51, 54, 57, 60, 63, 65, 68),
    *(71, 74, 85, 88, 91, 94, 96, 99, 108, 110, 113, 115, 118, 120, 124, 127, 131, 136, 140, 145, 148),
    *(151, 154, 158, 159),
)


@pytest.mark.parametrize(("shift", "refused"), [(0.0, False), (50.0, True)])
def test_a_recovery_far_from_the_prediction_is_refused(estimator, kitti06, monkeypatch, shift, refused):
    """PnP made to fail on KITTI 06 frame 12: the 5-point recovery from the newest keyframe locates it
    near the constant-velocity prediction and the frame becomes a keyframe; the same recovery moved 50 map
    units away (a baseline from a few wrong points) is refused by reloc_max_jump's test, as a window
    relocalisation is, and the frame fails without a pose (docs/preregistered/recovery_gate.txt)."""
    vo = _vo(estimator)
    est, _, _ = _run(vo, kitti06[:12])
    pnp, recover = vo._pnp, vo._recover
    monkeypatch.setattr(vo, "_pnp", lambda *a, **k: (None, pnp(*a, **k)[1]))

    def moved(*args):
        found = recover(*args)
        assert found is not None, "the recovery itself found no pose"
        T_wc = found[0].copy()
        T_wc[0, 3] += shift
        return (T_wc, *found[1:])

    monkeypatch.setattr(vo, "_recover", moved)
    before = vo.stats.recovered
    frame = kitti06[12]
    result = vo.process(frame.image, frame.timestamp, frame.camera)
    if refused:
        assert vo.stats.recovery_refused == 1 and vo.stats.recovered == before
        assert result.status == FAILED and result.T_odom_camera is None
    else:
        assert vo.stats.recovery_refused == 0 and vo.stats.recovered == before + 1
        assert result.status == TRACKED and result.is_keyframe
        step = np.linalg.norm(result.T_odom_camera[:3, 3] - est[-1][:3, 3])
        true_step = np.linalg.norm(frame.pose[:3, 3] - kitti06[11].pose[:3, 3])
        assert 0.5 * true_step < step < 2.0 * true_step, (step, true_step)  # metric (ground plane)
    vo.close()


# The relocalisation tests stop 3 frames after the one that relocalises (88): what they test has happened by
# then, and the whole list costs 60 % more time.
THROUGH_THE_RELOCALISATION = LIVE_KITTI07_FRAMES[: LIVE_KITTI07_FRAMES.index(96) + 1]


@pytest.fixture(scope="module")
def live_kitti07(shared_data):
    seq = open_sequence(shared_data / "kitti_odom07_000-159")
    return [seq[i] for i in THROUGH_THE_RELOCALISATION]


def _run_counting_matches(estimator, frames, tracking=None):
    """The xfeat / learned odometry over `frames`: its poses, ground truth, match_mutual calls and stats."""
    from banet_vo.odometry import keyframe_tracking, keyframe_vo

    calls = [0]
    counted = keyframe_vo.match_mutual

    def counting(*args, **kwargs):
        calls[0] += 1
        return counted(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for module in (keyframe_vo, keyframe_tracking):  # the map's start, and tracking
            patch.setattr(module, "match_mutual", counting)
        config = OdometryConfig(
            frontend="xfeat", scale_source="learned", tracking=tracking or TrackingConfig()
        )
        vo = make_odometry(estimator, config)
        est, gt, _ = _run(vo, frames)
        vo.close()
    return est, gt, calls[0], vo.stats


@pytest.fixture(scope="module")
def live_kitti07_default(estimator, live_kitti07):
    """The default run over those frames, shared by the tests below (each would repeat it)."""
    return _run_counting_matches(estimator, live_kitti07)


@pytest.mark.parametrize(("max_jump", "jumps"), [(0.0, True), (2.0, False)])
def test_a_relocalisation_far_from_the_prediction_is_refused(
    estimator, live_kitti07, request, max_jump, jumps
):
    """Frame 88, three frames after the stall, matches too few landmarks of the newest keyframes; PnP
    against the whole window then finds 57 inliers 30 map units behind the constant-velocity prediction,
    where an older keyframe stood, and the trajectory goes on from there. With tracking.reloc_max_jump 2
    that pose is refused and the frame is tracked from the newest keyframe instead
    (docs/preregistered/reloc_gate.txt)."""
    assert TrackingConfig().reloc_max_jump == 2.0  # the default since reloc_gate.txt
    if max_jump == TrackingConfig().reloc_max_jump:
        est, gt, _, stats = request.getfixturevalue("live_kitti07_default")
    else:
        est, gt, _, stats = _run_counting_matches(
            estimator, live_kitti07, TrackingConfig(reloc_max_jump=max_jump)
        )
    assert len(est) == len(live_kitti07)
    sim3, _ = _ate(est, gt, "sim3")
    print(f"reloc_max_jump {max_jump}: Sim(3) {sim3:.3f} m, refused {stats.reloc_refused}")
    # Measured through frame 96 (2026-12-06, seed 0): 7.18 m without the bound, 0.16 m with 2 (one
    # relocalisation refused); over all 50 frames 7.07 and 0.34 m.
    if jumps:
        assert stats.reloc_refused == 0
        assert sim3 > 3.0
    else:
        assert stats.reloc_refused >= 1
        assert sim3 < 0.6


def test_a_relocalisation_reuses_the_matches_to_the_newest_keyframes(
    estimator, live_kitti07, live_kitti07_default, monkeypatch
):
    """After PnP against the newest keyframes fails (frame 88 above), the relocalisation against the whole
    window takes their matches from that PnP instead of matching them again: the same poses, fewer calls."""
    reused, _, reused_calls, stats = live_kitti07_default
    pnp = KeyframeOdometry._pnp

    def matching_again(self, keyframes, features, T_guess, matched=None):
        reused = matched is not None and len(matched) < len(keyframes)  # the relocalisation's reuse
        return pnp(self, keyframes, features, T_guess, None if reused else matched)

    monkeypatch.setattr(KeyframeOdometry, "_pnp", matching_again)
    again, _, again_calls, _ = _run_counting_matches(estimator, live_kitti07)
    assert stats.reloc_refused >= 1  # the relocalisation ran (and was refused by the jump bound)
    assert len(reused) == len(again) == len(live_kitti07)
    for a, b in zip(reused, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert again_calls - reused_calls >= TrackingConfig().track_keyframes


@pytest.mark.parametrize("gap_failure", ["rebuild", "retry", "retry_after_stall"])
def test_a_frame_after_a_stall_that_pnp_cannot_locate(estimator, kitti06, gap_failure):
    """What a live node published of KITTI 06 (2026-12-05): frames 0, 3, 6, 8, then a 4.2 s stall, then
    frame 50, 40 m down the road. PnP cannot locate it. `rebuild` starts a new map there at once, at the
    last published pose (40 m off); `retry` reports the frame lost and keeps the map for the next frames,
    which may still find it (docs/preregistered/gap_failure_retry.txt); so does `retry_after_stall`, since
    the frames before the stall came at the camera's pace."""
    tracking = TrackingConfig(gap_failure=gap_failure)
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source="none", tracking=tracking))
    results = [vo.process(kitti06[i].image, kitti06[i].timestamp, kitti06[i].camera) for i in (0, 3, 6, 8)]
    assert all(r.T_odom_camera is not None for r in results[1:])
    last = results[-1].T_odom_camera
    after = vo.process(kitti06[50].image, kitti06[50].timestamp, kitti06[50].camera)
    assert "new segment after a gap" in after.message
    if gap_failure == "rebuild":
        assert vo.stats.lost == 1 and after.status != FAILED
        np.testing.assert_allclose(after.T_odom_camera, last)  # published where the last pose was
    else:
        assert vo.stats.lost == 0 and vo.has_keyframe
        assert after.status == FAILED and after.state == LOST and after.T_odom_camera is None


def test_retry_after_stall_rebuilds_at_once_at_a_steady_slow_rate(estimator, kitti06):
    """Every 12th KITTI 06 frame (1.2 s apart, each after a gap): no stall to wait out, so
    retry_after_stall rebuilds at once, exactly as rebuild does."""
    runs = {}
    for mode in ("rebuild", "retry_after_stall"):
        tracking = TrackingConfig(gap_failure=mode)
        vo = make_odometry(
            estimator, OdometryConfig(frontend="xfeat", scale_source="none", tracking=tracking)
        )
        frames = [kitti06[i] for i in range(0, len(kitti06), 12)]
        poses = [vo.process(f.image, f.timestamp, f.camera).T_odom_camera for f in frames]
        runs[mode] = (poses, vo.stats.lost)
    (rebuild_poses, rebuild_lost), (stall_poses, stall_lost) = runs["rebuild"], runs["retry_after_stall"]
    assert rebuild_lost == stall_lost >= 1
    assert [p is None for p in rebuild_poses] == [p is None for p in stall_poses]
    for a, b in zip(rebuild_poses, stall_poses, strict=True):
        if a is not None:
            np.testing.assert_allclose(a, b)


@pytest.mark.parametrize(
    ("position", "backed_up"),
    [
        ((0.0, 0.0, -1.0), True),  # straight back along the optical axis
        ((0.6, 0.0, -0.8), True),  # back and to the side: 0.8 >= half of 1
        ((0.9, 0.0, -0.4), False),  # mostly sideways
        ((0.0, 0.0, 1.0), False),  # forward
        ((0.0, 0.0, 0.0), False),  # not moved
    ],
)
def test_a_keyframe_backed_up_when_behind_the_previous_along_its_axis(position, backed_up):
    """keyframes.backed_up reads the step in the previous keyframe's camera (optical axis z), not in the
    world: the same steps with the previous camera turned 90 deg about y and placed elsewhere give the same
    answers."""
    from banet_vo.odometry.keyframes import backed_up as is_backed_up
    from scipy.spatial.transform import Rotation

    new = np.eye(4)
    new[:3, 3] = position
    assert is_backed_up(np.eye(4), new) is backed_up
    prev = np.eye(4)
    prev[:3, :3] = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    prev[:3, 3] = (3.0, -1.0, 2.0)
    assert is_backed_up(prev, prev @ new) is backed_up


@pytest.mark.parametrize("source", ["learned", "none"])
def test_each_result_carries_the_scale_evidence(estimator, kitti06, source):
    vo = make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source=source))
    results = [vo.process(f.image, f.timestamp, f.camera) for f in kitti06[:12]]
    counts = [r.scale_measurements for r in results]
    if source == "none":
        assert counts == [0] * 12 and all(math.isnan(r.scale_last_ratio) for r in results)
        return
    assert counts == sorted(counts) and counts[-1] >= 3  # one per measured keyframe, never lost
    for r in results:
        assert (r.scale_measurements == 0) == math.isnan(r.scale_last_ratio)
    last = results[-1]
    assert last.scale_last_ratio == pytest.approx(vo._scale.last / vo.scale)
    assert last.scale_spread == pytest.approx(vo._scale.relative_spread)
    assert last.scale_measurements == len(vo._scale)


class _FailingBanet:
    """The estimator with BA-Net failing on the keyframe pairs `fail(k)` picks (k counts its calls): `how`
    "raise" (a RuntimeError, as a CUDA out-of-memory would) or "nan" (an estimate whose cost is NaN, as a
    diverged LM gives). Everything else is the real estimator's."""

    def __init__(self, estimator, fail, how: str) -> None:
        self._estimator, self._fail, self._how = estimator, fail, how
        self.calls = self.failed = 0

    def __getattr__(self, name):
        return getattr(self._estimator, name)

    def estimate(self, reference, target, pose_init=None):
        k = self.calls
        self.calls += 1
        if not self._fail(k):
            return self._estimator.estimate(reference, target, pose_init)
        self.failed += 1
        if self._how == "raise":
            raise RuntimeError("CUDA out of memory (simulated)")
        return dataclasses.replace(self._estimator.estimate(reference, target, pose_init), cost=float("nan"))


@pytest.fixture(scope="module")
def kitti06_ground_plane_run(estimator, kitti06):
    """The ground-plane odometry's results over KITTI 06's first 20 frames with BA-Net working."""
    return _run(_vo(estimator), kitti06[:20])[2]


@pytest.mark.parametrize(
    ("how", "says"),
    [("raise", "BA-Net failed on the keyframe pair"), ("nan", "BA-Net gave no usable depth")],
)
def test_banet_failing_on_keyframe_pairs_drops_their_depth_and_keeps_the_trajectory(
    estimator, kitti06, kitti06_ground_plane_run, how, says
):
    """BA-Net failing on every other keyframe pair (raising, or a NaN cost) costs those keyframes their
    depth and nothing else: with the ground plane's scale BA-Net only gives depth, so every frame's status
    and pose are those of the run where it works, bit for bit; each failed pair's result says why it has
    no depth, and the pairs that work still publish theirs."""
    failing = _FailingBanet(estimator, lambda k: k % 2 == 1, how)
    _, _, results = _run(_vo(failing), kitti06[:20])
    assert failing.failed >= 3
    assert [r.status for r in results] == [r.status for r in kitti06_ground_plane_run]
    for got, expected in zip(results, kitti06_ground_plane_run, strict=True):
        if expected.T_odom_camera is not None:
            np.testing.assert_array_equal(got.T_odom_camera, expected.T_odom_camera)
    said = [r for r in results if says in r.message]
    assert len(said) == failing.failed
    assert all(r.depth is None and r.is_keyframe for r in said)
    assert not any(says in r.message for r in kitti06_ground_plane_run)
    with_depth = [r for r in results if r.depth is not None]
    assert len(with_depth) == failing.calls - failing.failed
    assert all(np.isfinite(r.depth).all() for r in with_depth)


def test_banet_failing_on_every_pair_leaves_a_learned_scale_map_in_its_own_units(estimator, kitti06):
    """With the learned scale and BA-Net failing on every keyframe pair, no measurement ever comes: the
    odometry goes on in map units and says so (scale source none, "scale not measured yet"), publishing
    exactly the trajectory of scale_source none."""
    failing = _FailingBanet(estimator, lambda k: True, "raise")
    learned = make_odometry(failing, OdometryConfig(frontend="xfeat", scale_source="learned"))
    _, _, results = _run(learned, kitti06[:15])
    _, _, unscaled = _run(
        make_odometry(estimator, OdometryConfig(frontend="xfeat", scale_source="none")), kitti06[:15]
    )
    assert failing.failed >= 3 and learned.scale is None
    tracked = [r for r in results if r.status == TRACKED]
    assert len(tracked) >= 12
    assert all(r.scale_source == "none" and "scale not measured yet" in r.message for r in tracked)
    assert [r.status for r in results] == [r.status for r in unscaled]
    for got, expected in zip(results, unscaled, strict=True):
        if expected.T_odom_camera is not None:
            np.testing.assert_array_equal(got.T_odom_camera, expected.T_odom_camera)


def test_banet_failing_in_its_background_thread_drops_only_those_depths(estimator, kitti06, caplog):
    """background_banet with BA-Net raising on every other keyframe pair in its thread: each failure is
    warned about with the keyframe and the error, the working pairs' depths still come back (once, with
    their keyframe's stamp), and every frame after the first map has a pose within the working thread's
    accuracy bounds."""
    failing = _FailingBanet(estimator, lambda k: k % 2 == 1, "raise")
    vo = _vo(failing, background_banet=True)
    with caplog.at_level("WARNING", logger="banet_vo.odometry.keyframe_vo"):
        est, gt, results = _run(vo, kitti06[:30])
        vo.settle()
    vo.close()
    assert failing.failed >= 3
    warned = [m for m in caplog.messages if "BA-Net failed on the keyframe pair: CUDA out of memory" in m]
    assert len(warned) == failing.failed
    first_map = next(i for i, r in enumerate(results) if r.status == TRACKED)
    assert all(r.has_pose for r in results[first_map:])
    stamps = [r.depth_stamp for r in results if r.depth is not None]
    assert len(set(stamps)) == len(stamps) and len(stamps) >= failing.calls - failing.failed - 1
    _assert_first_30_kitti06_frames(est, gt)


@pytest.mark.parametrize("background_ba", [False, True])
def test_keyframe_depth_is_published_at_the_poses_scale_with_the_window_ba_in_the_background_too(
    estimator, kitti06, background_ba
):
    """The published keyframe depth is in the pose's metres: at the frame's landmarks it reads their depth
    at the applied scale. With background_ba a keyframe's scale measurement waits for its window BA, and
    its depth went out at BA-Net's own scale (0.11-0.69x the landmarks' on KITTI 06)."""
    from banet_vo.backend.background import HeldBundleAdjuster
    from banet_vo.odometry.scale import depth_at_pixels

    worker = HeldBundleAdjuster(2) if background_ba else None
    vo = _vo(estimator, window_ba_worker=worker, background_ba=background_ba)
    ratios = []
    try:
        for f in kitti06[:24]:
            if worker is not None:
                worker.next_frame()
            r = vo.process(f.image, f.timestamp, f.camera)
            observed = vo.observed_landmarks()
            if r.depth is None or not r.has_pose or observed is None or vo.scale is None:
                continue
            px, z = observed
            d = depth_at_pixels(r.depth, r.depth_camera, f.camera, px)
            ok = np.isfinite(d) & (d > 0)
            ratios.append(float(np.median(d[ok] / z[ok])))
    finally:
        vo.close()
    assert len(ratios) >= 5
    assert 0.75 < min(ratios) and max(ratios) < 1.4, ratios


def test_the_published_depth_keeps_within_min_and_max_depth_after_its_rescale(estimator, kitti06):
    """min_depth / max_depth were applied to BA-Net's depth before it was rescaled to the pose's metres:
    with max_depth 5 maps went out with 6.2-6.7 m, with 200 one with 215 m."""
    vo = _vo(estimator, min_depth=2.0, max_depth=8.0)
    published = []
    try:
        for f in kitti06[:16]:
            r = vo.process(f.image, f.timestamp, f.camera)
            if r.depth is not None and vo.scale is not None:
                published.append(r.depth[r.depth > 0])
    finally:
        vo.close()
    assert len(published) >= 3
    values = np.concatenate(published)
    assert values.size > 100 and values.min() >= 2.0 and values.max() <= 8.0
    # scale_source none publishes map units: the bounds in metres do not cut them
    vo = make_odometry(
        estimator, OdometryConfig(frontend="xfeat", scale_source="none", min_depth=2.0, max_depth=8.0)
    )
    unbounded = []
    try:
        for f in kitti06[:16]:
            r = vo.process(f.image, f.timestamp, f.camera)
            if r.depth is not None and r.has_pose:
                unbounded.append(r.depth[r.depth > 0])
    finally:
        vo.close()
    assert unbounded and np.concatenate(unbounded).max() > 8.0


def test_a_reset_drops_a_late_depth_of_the_old_trajectory(estimator, kitti06):
    """background_banet: a depth that came back after its keyframe was published waits for the next result
    with a pose; after a reset that result is the new trajectory's first frame, which got the old
    trajectory's keyframe depth and stamp."""
    vo = _vo(estimator, background_banet=True)
    try:
        frames = iter(kitti06[:25])
        for f in frames:
            vo.process(f.image, f.timestamp, f.camera)
            if vo._banet_job is not None:
                break
        vo._banet_job[2].result()
        vo._merge_banet()
        assert vo._late_depth is not None  # waiting for a result with a pose
        vo.reset(reason="test")
        f = kitti06[30]
        r = vo.process(f.image, 100.0, f.camera)
        assert r.depth is None and r.depth_stamp is None
    finally:
        vo.close()


def test_a_step_whose_covariance_cannot_be_measured_is_not_published_as_exact(
    estimator, kitti06, monkeypatch
):
    """pose_covariance_px gives None when fewer than 6 points lie in front (a recovery on few landmarks):
    the step's covariance was then zero, an exact step to a fusion filter. It is now what the last
    velocity could do over the step."""
    vo = _vo(estimator)
    try:
        results = [vo.process(f.image, f.timestamp, f.camera) for f in kitti06[:8]]
        assert results[-1].has_pose
        monkeypatch.setattr(type(vo), "_pnp_covariance", lambda self, *args: None)
        f = kitti06[8]
        r = vo.process(f.image, f.timestamp, f.camera)
    finally:
        vo.close()
    assert r.has_pose
    step = np.asarray(r.relative_covariance)
    speed = np.linalg.norm(results[-1].T_odom_base[:3, 3] - results[-2].T_odom_base[:3, 3]) / 0.1
    assert np.trace(step[:3, :3]) > 0.5 * 3 * (speed * 0.1) ** 2  # about the step's own length, not 0
