"""Publish a ROS 2 bag through rclpy at the recorded pace: the stand-in for `ros2 bag play` (`banet-vo-play`).

Messages go out as the CDR bytes stored in the bag (rclpy publishes `bytes` as serialized messages), so
nothing is decoded or re-encoded. Pace: message k is sent at wall time start + (t_k - t_0) / rate on a
monotonic clock; a slow machine sends late, it never skips. With `clock=True`, /clock carries the bag
time, sent before each message and at `clock_hz` in between. Topics recorded as transient-local
(/tf_static) are published latched. A topic whose message package is not installed is skipped with one
warning naming the package.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock

from banet_vo.data.bags import BagReader
from banet_vo.ros.qos import latched_qos, qos_from_name, reliable_qos

logger = logging.getLogger(__name__)

PLAYER_QOS = ("auto", "sensor", "reliable")
CLOCK_TOPIC = "/clock"
_NS_PER_S = 1_000_000_000
# How soon a wait notices stop(): its sleeps are cut into slices this long.
_STOP_POLL_S = 0.02
_PROGRESS_PERIOD_S = 0.1


@dataclass(frozen=True)
class PlaybackStats:
    """What one call of BagPlayer.play did."""

    messages: int  # messages published (all passes)
    passes: int  # complete or partial passes over the bag
    last_stamp_ns: int | None  # bag time of the last message sent
    wall_s: float
    stopped: bool  # ended by stop() (Ctrl-C) rather than by reaching the end
    per_topic: dict[str, int] = field(default_factory=dict)  # messages published per bag topic


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def parse_remaps(items: list[str] | None) -> dict[str, str]:
    """["a:=b", ...] → {"/a": "/b"}; ValueError naming the bad entry."""
    remaps: dict[str, str] = {}
    for item in items or []:
        source, sep, target = item.partition(":=")
        if not sep or not source.strip() or not target.strip() or " " in item:
            raise ValueError(f"remap must look like 'from:=to', got {item!r}")
        remaps[_absolute(source)] = _absolute(target)
    return remaps


def _message_class(msgtype: str) -> type:
    """The rclpy message class of 'pkg/msg/Name'; ImportError when the package is missing."""
    package, kind, name = msgtype.split("/")
    module = importlib.import_module(f"{package}.{kind}")
    return getattr(module, name)


def _ros_time(t_ns: int) -> Time:
    sec, nanosec = divmod(int(t_ns), _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


class BagPlayer:
    """Publish a bag on an rclpy node. Build it, optionally wait for subscribers, then play().

    node_or_context: an rclpy Node to publish on, or a Context in which the player makes its own node.
    rate: playback speed factor (2.0 = twice the recorded pace). clock: publish /clock with bag time.
    qos: "auto" (as recorded in the bag), "sensor" or "reliable"; latched topics stay transient-local.
    remaps: {"from": "to"} topic names. topics: play only these bag topics (default all).
    loop: start again at the end until stop(). progress: stream for the `\\r` progress line (e.g. stderr).
    depth: history depth of the stream publishers (default: the profile's, 10 reliable / 5 best effort); a
    reliable publisher keeps that many samples for retransmission, so a deeper one loses none to a reader
    that stalls for a moment (banet-vo-run, which must process every frame, plays with 100).
    play() blocks the calling thread; stop() may be called from any thread or a signal handler.
    """

    def __init__(
        self,
        node_or_context: Node | Context,
        bag: str | Path,
        *,
        rate: float = 1.0,
        clock: bool = False,
        clock_hz: float = 100.0,
        qos: str = "auto",
        remaps: dict[str, str] | None = None,
        topics: list[str] | None = None,
        loop: bool = False,
        progress: TextIO | None = None,
        node_name: str = "banet_vo_bag_player",
        depth: int | None = None,
    ) -> None:
        if not isinstance(rate, int | float) or not rate > 0 or rate == float("inf"):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        if not isinstance(clock_hz, int | float) or not clock_hz > 0:
            raise ValueError(f"clock_hz must be positive, got {clock_hz!r}")
        if qos not in PLAYER_QOS:
            raise ValueError(f"qos must be one of {PLAYER_QOS}, got {qos!r}")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
            raise ValueError(f"depth must be a positive int or None, got {depth!r}")
        self.depth = depth
        self.rate = float(rate)
        self.clock = bool(clock)
        self.clock_period_s = 1.0 / float(clock_hz)
        self.loop = bool(loop)
        self._progress = progress
        self._reported: tuple[int, int] | None = None  # (pass, tenth of the bag) last written to a non-tty
        # A plain flag, no threading.Event: stop() is called from SIGINT handlers, which run on the main
        # thread between two bytecodes, and an Event's set() takes the lock its wait() may be holding on
        # that same thread (a deadlock that only SIGKILL ended). Waits poll the flag (_sleep).
        self._stop_requested = False

        if not isinstance(node_or_context, Node | Context):
            raise ValueError(f"node_or_context must be an rclpy Node or Context, got {type(node_or_context)}")
        self.publishers: dict[str, Any] = {}  # bag topic → rclpy Publisher (on the remapped name)
        self.output_topics: dict[str, str] = {}  # bag topic → published name
        self._clock_pub: Any = None
        self._closed = False
        self._owns_node = False
        self.node: Node | None = node_or_context if isinstance(node_or_context, Node) else None
        self._reader = BagReader(bag)
        self._reader.__enter__()
        try:
            if self.node is None:
                self.node, self._owns_node = Node(node_name, context=node_or_context), True
            self._setup_publishers(qos, remaps or {}, topics)
        except BaseException:
            self.close()
            raise

    def _setup_publishers(self, qos: str, remaps: dict[str, str], topics: list[str] | None) -> None:
        bag_topics = self._reader.topics
        remaps = {_absolute(k): _absolute(v) for k, v in remaps.items()}
        unknown = sorted(set(remaps) - set(bag_topics))
        if unknown:
            raise ValueError(f"remaps: {unknown} are not topics of the bag (it has {sorted(bag_topics)})")
        wanted = list(bag_topics) if topics is None else [_absolute(t) for t in topics]
        missing = sorted(set(wanted) - set(bag_topics))
        if missing:
            raise ValueError(f"topics: {missing} are not in the bag (it has {sorted(bag_topics)})")

        warned_packages: set[str] = set()
        for name in wanted:
            info = bag_topics[name]
            try:
                msg_class = _message_class(info.msgtype)
            except (ImportError, AttributeError, ValueError):
                package = info.msgtype.split("/")[0]
                if package not in warned_packages:
                    warned_packages.add(package)
                    logger.warning(
                        "skipping %s (%s): message package %s is not importable here (a ROS 2 distro has "
                        "it; on the pip install only if the index has a ros-%s wheel: tf2_msgs has none)",
                        name,
                        info.msgtype,
                        package,
                        package.replace("_", "-"),
                    )
                continue
            profile = self._profile(qos, info.reliable, info.latched, self.depth)
            out = remaps.get(name, name)
            self.publishers[name] = self.node.create_publisher(msg_class, out, profile)
            self.output_topics[name] = out
        self._clock_pub = (
            self.node.create_publisher(Clock, CLOCK_TOPIC, reliable_qos(depth=1)) if self.clock else None
        )
        self._total = sum(bag_topics[name].count for name in self.publishers)

    @staticmethod
    def _profile(qos: str, recorded_reliable: bool, latched: bool, depth: int | None) -> QoSProfile:
        if latched:
            return latched_qos()
        reliable = recorded_reliable if qos == "auto" else qos == "reliable"
        name = "reliable" if reliable else "sensor"
        return qos_from_name(name, depth)

    @property
    def start_ns(self) -> int:
        return self._reader.start_ns

    @property
    def end_ns(self) -> int:
        return self._reader.end_ns

    def wait_for_subscribers(
        self, topics: list[str] | None = None, timeout: float = 5.0, min_count: int = 1
    ) -> bool:
        """Wait until each publisher of `topics` has `min_count` matched subscriptions; False on timeout.

        topics: bag topic names (default: all played), and "/clock" when clock is on.
        """
        publishers = dict(self.publishers)
        if self._clock_pub is not None:
            publishers[CLOCK_TOPIC] = self._clock_pub
        names = list(self.publishers) if topics is None else [_absolute(t) for t in topics]
        unknown = sorted(set(names) - set(publishers))
        if unknown:
            raise ValueError(f"topics: {unknown} are not published by this player")
        deadline = time.monotonic() + timeout
        while not all(publishers[n].get_subscription_count() >= min_count for n in names):
            if time.monotonic() >= deadline or not self._sleep(0.01):
                return False
        return True

    def stop(self) -> None:
        """End play() as soon as possible, and any later play() at once. Takes no lock: safe from a signal
        handler and from any thread."""
        self._stop_requested = True

    @property
    def stopped(self) -> bool:
        return self._stop_requested

    def _sleep(self, seconds: float) -> bool:
        """Sleep `seconds` in slices of at most _STOP_POLL_S; False as soon as stop() was called."""
        end = time.monotonic() + seconds
        while not self._stop_requested:
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, _STOP_POLL_S))
        return False

    def _publish_clock(self, t_ns: int) -> None:
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=_ros_time(t_ns)))

    def _report(self, sent: int, t_ns: int, passes: int, final: bool = False) -> None:
        if self._progress is None:
            return
        span = max(self.end_ns - self.start_ns, 1)
        elapsed = (t_ns - self.start_ns) / _NS_PER_S
        percent = 100.0 * (t_ns - self.start_ns) / span
        text = (
            f"[banet-vo-play] pass {passes}  {sent} msgs  bag time {elapsed:8.3f} / "
            f"{span / _NS_PER_S:.3f} s  {percent:5.1f}%"
        )
        isatty = getattr(self._progress, "isatty", None)
        if isatty is not None and isatty():
            self._progress.write("\r" + text + ("\n" if final else ""))  # one line, rewritten in place
        else:
            # a log file or a pipe: one line per tenth of the bag, not a single line of \r updates
            tenth = (passes, int(percent // 10))
            if not final and tenth == self._reported:
                return
            self._reported = tenth
            self._progress.write(text + "\n")
        self._progress.flush()

    def play(self, until: float | None = None, delay: float = 0.0) -> PlaybackStats:
        """Publish the bag (again and again with loop) until its end, `until` or stop(); blocks.

        until: seconds of bag time after the first message at which each pass ends (None: whole bag).
        delay: wall seconds to wait before the first message (lets subscribers discover the publishers).
        """
        if until is not None and not until >= 0:
            raise ValueError(f"until must be None or >= 0 seconds, got {until!r}")
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
        if delay > 0:
            self._sleep(delay)
        limit_ns = None if until is None else self.start_ns + round(until * _NS_PER_S)
        wall_begin = time.monotonic()
        sent, passes, last_ns = 0, 0, None
        per_topic: collections.Counter[str] = collections.Counter()
        next_report = 0.0
        stopped = self._stop_requested
        while not stopped:
            passes += 1
            pass_start = time.monotonic()
            for record in self._reader.records(list(self.publishers)):
                if limit_ns is not None and record.timestamp_ns > limit_ns:
                    break
                target = pass_start + (record.timestamp_ns - self.start_ns) / _NS_PER_S / self.rate
                if not self._wait_until(target, pass_start):
                    stopped = True
                    break
                self._publish_clock(record.timestamp_ns)
                self.publishers[record.topic].publish(record.data)
                sent += 1
                per_topic[record.topic] += 1
                last_ns = record.timestamp_ns
                if time.monotonic() >= next_report:
                    self._report(sent, last_ns, passes)
                    next_report = time.monotonic() + _PROGRESS_PERIOD_S
            if not self.loop or self._total == 0:
                break
        if last_ns is not None:
            self._report(sent, last_ns, passes, final=True)
        self._flush()
        return PlaybackStats(sent, passes, last_ns, time.monotonic() - wall_begin, stopped, dict(per_topic))

    def _wait_until(self, target: float, pass_start: float) -> bool:
        """Sleep until the monotonic time `target`, sending /clock meanwhile; False when stopped."""
        while True:
            now = time.monotonic()
            if self._stop_requested:
                return False
            if now >= target:
                return True
            wait = target - now
            if self._clock_pub is not None:
                self._publish_clock(self.start_ns + round((now - pass_start) * self.rate * _NS_PER_S))
                wait = min(wait, self.clock_period_s)
            if not self._sleep(wait):
                return False

    def _flush(self, timeout_s: float = 2.0) -> None:
        """Give reliable subscribers time to acknowledge the last messages (no-op for best-effort)."""
        deadline = time.monotonic() + timeout_s
        for topic, publisher in self.publishers.items():
            left = max(deadline - time.monotonic(), 0.0)
            if not publisher.wait_for_all_acked(Duration(nanoseconds=int(left * _NS_PER_S))):
                logger.warning("not every subscriber of %s acknowledged the last messages", topic)

    def close(self) -> None:
        """Destroy the publishers (and the node when the player made it) and close the bag; idempotent."""
        if self._closed:
            return
        self._closed = True
        for publisher in self.publishers.values():
            self.node.destroy_publisher(publisher)
        self.publishers = {}
        if self._clock_pub is not None:
            self.node.destroy_publisher(self._clock_pub)
            self._clock_pub = None
        if self._owns_node and self.node is not None:
            self.node.destroy_node()
        self._reader.__exit__(None, None, None)

    def __enter__(self) -> BagPlayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banet-vo-play",
        description="Publish a ROS 2 bag (MCAP or sqlite3) through rclpy at the recorded pace; Ctrl-C stops.",
    )
    parser.add_argument(
        "bag", type=Path, help="rosbag2 directory (MCAP or sqlite3; a damaged one plays what is intact)"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default: 1.0)")
    parser.add_argument(
        "--clock", action="store_true", help="publish /clock (rosgraph_msgs/Clock) with the bag time"
    )
    parser.add_argument(
        "--clock-hz", type=float, default=100.0, help="/clock rate between messages (default: 100)"
    )
    parser.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    parser.add_argument(
        "--remap",
        action="append",
        default=[],
        metavar="FROM:=TO",
        help="publish bag topic FROM as TO (repeatable)",
    )
    parser.add_argument(
        "--qos",
        choices=PLAYER_QOS,
        default="auto",
        help="reliability of the publishers: as recorded in the bag (auto, default), sensor (best effort) "
        "or reliable; transient-local topics such as /tf_static always stay latched",
    )
    parser.add_argument("--topics", nargs="+", default=None, help="play only these bag topics")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before the first message")
    parser.add_argument(
        "--until",
        type=float,
        default=None,
        help="in each pass, play the messages stamped at most this many seconds after the bag's first "
        "message (of any topic, played or not)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[banet-vo-play] %(levelname)s %(message)s", stream=sys.stderr
    )
    # Our own handlers: Ctrl-C ends playback cleanly instead of rclpy shutting the context down under us.
    context = Context()
    # args: our argv is argparse's; rcl would read "a:=b" in it as a global remap rule.
    rclpy.init(args=["banet-vo-play"], context=context, signal_handler_options=SignalHandlerOptions.NO)
    player = None
    previous_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        player = BagPlayer(
            context,
            args.bag,
            rate=args.rate,
            clock=args.clock,
            clock_hz=args.clock_hz,
            qos=args.qos,
            remaps=parse_remaps(args.remap),
            topics=args.topics,
            loop=args.loop,
            progress=sys.stderr,
        )
        for sig in previous_handlers:
            signal.signal(sig, lambda *_: player.stop())
        for bag_topic, out in player.output_topics.items():
            suffix = "" if out == bag_topic else f" (from {bag_topic})"
            print(f"[banet-vo-play] publishing {out}{suffix}", file=sys.stderr)
        stats = player.play(until=args.until, delay=args.delay)
        how = "stopped" if stats.stopped else "done"
        print(
            f"[banet-vo-play] {how}: {stats.messages} messages in {stats.wall_s:.2f} s, "
            f"{stats.passes} pass(es)",
            file=sys.stderr,
        )
        return 0
    except ValueError as err:
        print(f"banet-vo-play: error: {err}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        if player is not None:
            player.close()
        if context.ok():
            rclpy.shutdown(context=context)


if __name__ == "__main__":
    sys.exit(main())
