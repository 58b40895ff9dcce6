"""End-to-end latency of the banet_vo node (image stamp → odometry received) and the highest input rate it
serves without dropping frames, CPU, `small` model.

    .venv/bin/python -m benchmarks.vo_latency [--model M] [--size 320x240] [--frames 30]

A publisher node sends textured mono8 frames stamped with the wall clock (system time) at a fixed rate; a
subscriber in the same process records when each odometry arrives, so latency = arrival − stamp on one
clock. The node runs with queue_size 1 (latest frame wins, as deployed). Rates are swept upward; the
highest rate at which every frame sent was processed (none dropped) is reported. A node that has not
subscribed within 10 s is an error, not a run whose frames went nowhere.
Results: benchmarks/results/vo_latency.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from banet_vo.ros import topics

from benchmarks.section import header_lines
from benchmarks.vo_kitti import DEFAULT_MODEL, ROOT

RESULTS = ROOT / "benchmarks" / "results" / "vo_latency.md"


def textured_frames(width: int, height: int, frames: int, step: int = 2) -> list[np.ndarray]:
    """`frames` views of one smooth random texture, each `step` pixels further along (something the BA can
    lock onto); the texture is as wide as the last view needs, so every frame is width x height."""
    import cv2

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 4 + 1, (width + step * frames) // 4 + 1), dtype=np.uint8)
    big = cv2.resize(base, (base.shape[1] * 4, base.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(big[:height, step * i : step * i + width]) for i in range(frames)]


class NotSubscribed(RuntimeError):
    """The node did not subscribe to the image topics in time."""


def wait_for_subscribers(publishers, timeout: float = 10.0, poll: float = 0.02) -> None:
    """Wait until each publisher has a subscriber; NotSubscribed after `timeout` s (frames sent before
    then would be lost, and the rate would look served with nothing processed): NotSubscribed."""
    deadline = time.monotonic() + timeout
    while any(pub.get_subscription_count() < 1 for pub in publishers):
        if time.monotonic() >= deadline:
            missing = [pub.topic_name for pub in publishers if pub.get_subscription_count() < 1]
            raise NotSubscribed(f"vo_latency: the node did not subscribe to {missing} within {timeout:g} s")
        time.sleep(poll)


def served_rates(rows: list[dict]) -> list[float]:
    """Rates at which every frame sent was processed: none dropped, none lost before the node."""
    return [r["rate"] for r in rows if r["dropped"] == 0 and r["processed"] == r["sent"]]


def measure(context, model: Path, device: str, size: tuple[int, int], rate: float, frames: int) -> dict:
    """Publish `frames` frames at `rate` Hz; latency percentiles and drop counts."""
    from banet_vo.geometry import PinholeCamera
    from banet_vo.ros.conversions import camera_to_camera_info, ns_to_stamp, numpy_to_image, stamp_to_ns
    from banet_vo.ros.executor_thread import ExecutorThread
    from banet_vo.ros.qos import reliable_qos
    from banet_vo.ros.vo_node import VONode
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image

    width, height = size
    camera = PinholeCamera(0.9 * width, 0.9 * width, (width - 1) / 2, (height - 1) / 2, width, height)
    node = VONode(
        context=context,
        parameter_overrides=[
            Parameter("model", value=str(model)),
            Parameter("device", value=device),
            Parameter("queue_size", value=1),
            Parameter("image_qos", value="reliable"),
            Parameter("keyframe_mode", value="consecutive"),
            # Sliding synthetic textures never show parallax, so the feature front end would never
            # start a map: the latency of the node shell + BA-Net is measured with BA-Net alone.
            Parameter("frontend", value="none"),
        ],
    )
    io = Node("latency_io", context=context)
    img_pub = io.create_publisher(Image, "image", reliable_qos(depth=5))
    info_pub = io.create_publisher(CameraInfo, "camera_info", reliable_qos(depth=5))
    arrivals: dict[int, int] = {}  # stamp ns → arrival ns (both wall clock)
    lock = threading.Lock()

    def on_odom(msg: Odometry) -> None:
        now = time.time_ns()
        with lock:
            arrivals[stamp_to_ns(msg.header.stamp)] = now

    io.create_subscription(Odometry, topics.output_topic(topics.ODOMETRY), on_odom, reliable_qos(depth=100))
    executor = SingleThreadedExecutor(context=context)  # as the node's own main (node_shell.run_node)
    executor.add_node(node)
    executor.add_node(io)
    spinner = ExecutorThread(executor, "vo_latency executor")
    try:
        wait_for_subscribers([img_pub, info_pub], timeout=10.0)
        images = textured_frames(width, height, frames)
        time.sleep(0.2)
        sent: list[int] = []
        start = time.monotonic()
        for i, pixels in enumerate(images):
            target = start + i / rate
            time.sleep(max(0.0, target - time.monotonic()))
            stamp = time.time_ns()
            msg = numpy_to_image(pixels, "mono8")
            msg.header.stamp = ns_to_stamp(stamp)
            msg.header.frame_id = "camera_optical"
            # A camera driver publishes camera_info with each image, same stamp (the node pairs them).
            info_pub.publish(camera_to_camera_info(camera, msg.header, "camera_optical"))
            img_pub.publish(msg)
            sent.append(stamp)
        node.wait_idle(timeout=120.0)
        time.sleep(0.3)
        snap = node.snapshot()
        with lock:
            latencies = np.array([(arrivals[t] - t) * 1e-9 for t in sent if t in arrivals])
        return {
            "rate": rate,
            "sent": frames,
            "processed": int(snap["processed"]),
            "dropped": int(snap["dropped"]),
            "failed": int(snap["failed"]),
            "p50_ms": float(np.percentile(latencies, 50) * 1e3) if latencies.size else float("nan"),
            "p95_ms": float(np.percentile(latencies, 95) * 1e3) if latencies.size else float("nan"),
            "inference_ms": float(snap["last_inference_ms"]),
        }
    finally:
        spinner.close(timeout=5.0)
        node.destroy_node()
        io.destroy_node()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.vo_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="BA-Net checkpoint")
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--size", default="320x240", help="published image size WxH (default 320x240)")
    parser.add_argument("--frames", type=int, default=30, help="frames per rate (default 30)")
    parser.add_argument("--rates", default="1,2,3,5,8,12,20", help="comma-separated input rates in Hz")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"vo_latency: model {args.model} not found (--model)", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    import rclpy
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    context = rclpy.Context()
    rclpy.init(context=context)
    rows = []
    try:
        for rate in (float(r) for r in args.rates.split(",")):
            row = measure(context, args.model, args.device, (width, height), rate, args.frames)
            rows.append(row)
            print(
                f"[vo_latency] {rate:g} Hz: processed {row['processed']}/{row['sent']}, "
                f"dropped {row['dropped']}, "
                f"p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms",
                file=sys.stderr,
            )
            if row["dropped"] > 0 and len(rows) >= 2 and rows[-2]["dropped"] > 0:
                break  # two rates in a row dropping: higher ones will too
    except NotSubscribed as exc:
        print(f"{exc}; nothing written", file=sys.stderr)
        return 1
    finally:
        rclpy.shutdown(context=context)
    served = served_rates(rows)
    lines = [
        *header_lines(
            "banet_vo node latency (stamp → odometry received) and highest rate without drops",
            "benchmarks.vo_latency",
            argv,  # the whole command (None: sys.argv[1:])
            machine_extra=f"torch threads {torch.get_num_threads()}",
            model=args.model.name,
        ),
        "",
        f"{args.size} mono8 frames published reliable at each rate, node queue_size 1 (latest frame wins), "
        "keyframe_mode consecutive, frontend none, camera_info with each image; "
        "latency = odometry arrival − image stamp on the same wall clock "
        "(includes DDS both ways, conversion, resize, BA-Net and publishing). Shared CPU: figures are noisy.",
        "",
        "| input rate [Hz] | processed / sent | dropped | failed | p50 [ms] | p95 [ms] | last pair [ms] |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['rate']:g} | {r['processed']} / {r['sent']} | {r['dropped']} | {r['failed']} | "
            f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['inference_ms']:.0f} |"
            for r in rows
        ),
        "",
        f"Highest input rate served (every frame processed, none dropped): {max(served):g} Hz."
        if served
        else "No rate was served (every one dropped or lost frames).",
        "",
    ]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
