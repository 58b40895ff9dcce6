"""The banet_vo node as a managed (lifecycle) node: `vo_lifecycle_node`.

Same interface as `vo_node` (docs/node.md), with the REP-2002 states: parameters are declared at start
(unknown names and bad values still stop it there); configure validates them and loads the model (a
failure is logged and leaves the node unconfigured); activate subscribes the image input; deactivate
unsubscribes and drops what is queued; cleanup releases the model and the outputs. A launch system
(nav2's lifecycle manager, launch_ros' LifecycleNode) can bring the model up before the camera starts.
"""

from __future__ import annotations

import sys
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from banet_vo.odometry import PairEstimator
from banet_vo.ros.node_shell import node_main
from banet_vo.ros.params import params_from_values
from banet_vo.ros.topics import NODE_NAME
from banet_vo.ros.vo_node import HELP, VOShell
from banet_vo.ros.vo_tf import ExtrinsicSource


class VOLifecycleNode(LifecycleNode, VOShell):
    """Managed banet_vo node; `estimator` may be given programmatically (tests) instead of `model`."""

    def __init__(self, *, estimator: PairEstimator | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_kwargs.pop("node_name", NODE_NAME), **node_kwargs)
        try:
            self._declare_parameters()
        except BaseException:
            super().destroy_node()
            raise
        self._given_estimator = estimator
        self._configured = False
        self.camera_input = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = params_from_values(self._current_values())
            extrinsic = ExtrinsicSource(self, self.params)
        except ValueError as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self.extrinsic = extrinsic
        # The extrinsic's tf listener subscribes /tf and /tf_static: a configure that fails after it was
        # made (a model that does not load, an exception) closes it, or each retry would add one.
        configured = False
        try:
            try:
                self._check_parameter_extrinsic()
                estimator = self._given_estimator or self._load_estimator(self.params)
                self._configure(estimator)  # builds the odometry first: a failure there leaves nothing
            except ValueError as err:
                self.get_logger().error(f"configure failed: {err}")
                return TransitionCallbackReturn.FAILURE
            configured = True
        finally:
            if not configured:
                extrinsic.close()
        self._configured = True
        self.get_logger().info("configured: model loaded, outputs created; activate to subscribe")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._open_input()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close_input()
        self.get_logger().info("deactivated: image input unsubscribed")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._configured = False
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._configured:
            self._release()
            self._configured = False
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        if self._configured:
            self._release()
            self._configured = False
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """`ros2 run banet_vo vo_lifecycle_node [--ros-args -p model:=...]`, then configure and activate it."""
    return node_main(
        VOLifecycleNode, HELP, argv, executable="vo_lifecycle_node", prog="banet_vo", log_tag="banet_vo"
    )


if __name__ == "__main__":
    sys.exit(main())
