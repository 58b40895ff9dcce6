"""The banet_vo node as a managed (lifecycle) node: `vo_lifecycle_node`.

Same interface as `vo_node` (docs/node.md), with the REP-2002 states: parameters are declared at start
(unknown names and bad values still stop it there); configure validates them and loads the model (a
failure is logged and leaves the node unconfigured); activate subscribes the image input; deactivate
unsubscribes and drops what is queued; cleanup releases the model and the outputs. A launch system
(nav2's lifecycle manager, launch_ros' LifecycleNode) can bring the model up before the camera starts.

Every transition logs what it fails on. A configure refused for its input (a bad parameter, a model that
does not load: a ValueError) returns FAILURE; anything else raised by a transition returns ERROR, and
on_error releases whatever the node still holds, so that it ends unconfigured and the next configure
builds one fresh set. Start-up (not dynamic) parameters can be set while the node is unconfigured, and
configure uses them; while it is configured (inactive or active) they are refused with the reason.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from banet_vo.odometry import PairEstimator
from banet_vo.ros.node_shell import node_main
from banet_vo.ros.params import PARAMS, params_from_values
from banet_vo.ros.topics import NODE_NAME
from banet_vo.ros.vo_node import HELP, VOShell
from banet_vo.ros.vo_tf import ExtrinsicSource

# What a configure makes (VOShell._configure, and the extrinsic), reset before each one so that a failure
# releases what that configure made and nothing older.
MADE_BY_CONFIGURE = ("vo", "estimator", "worker", "tf", "extrinsic", "camera_input", "_log_handler")


class VOLifecycleNode(LifecycleNode, VOShell):
    """Managed banet_vo node; `estimator` may be given programmatically (tests) instead of `model`."""

    def __init__(self, *, estimator: PairEstimator | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_kwargs.pop("node_name", NODE_NAME), **node_kwargs)
        self._configured = False
        self._configuring = False
        try:
            self._declare_parameters()
        except BaseException:
            super().destroy_node()
            raise
        self._given_estimator = estimator
        self._param_callback: Callable | None = None
        for name in MADE_BY_CONFIGURE:
            setattr(self, name, None)
        # What the node holds unconfigured (taken again at each configure: rclpy adds entities of its own
        # meanwhile, e.g. /clock's subscription when use_sim_time is set): anything beyond it was made by a
        # configure or an activate.
        self._unconfigured_entities = self._entities()

    # -- parameters ----------------------------------------------------------------------------------
    def _declare_parameters(self, writable: bool = True) -> dict[str, Any]:
        """As VOShell's, but no parameter is read-only to rclpy: `_on_set_startup_parameters` (for the
        node's whole life) takes a start-up parameter while unconfigured and refuses it while configured."""
        values = super()._declare_parameters(writable=writable)
        self.add_on_set_parameters_callback(self._on_set_startup_parameters)
        return values

    def _startup_refusal(self, parameters: list[Any]) -> SetParametersResult | None:
        """The refusal of a start-up parameter while the node is configured (or configuring), else None."""
        if not (self._configured or self._configuring):
            return None
        for param in parameters:
            if param.name in PARAMS and not PARAMS[param.name].dynamic:
                reason = (
                    f"parameter {param.name}: a start-up parameter, not settable while the node is "
                    "configured (inactive or active); cleanup, set it, then configure"
                )
                return SetParametersResult(successful=False, reason=reason)
        return None

    def _on_set_startup_parameters(self, parameters: list[Any]) -> SetParametersResult:
        """For the node's whole life. Configured: a start-up parameter is refused (a dynamic one is
        validated and applied by VOShell's callback). Unconfigured: every value is checked as at start (type,
        choices, range) and taken; configure checks them together."""
        refusal = self._startup_refusal(parameters)
        if refusal is not None:
            return refusal
        if self._configured or self._configuring:
            return SetParametersResult(successful=True)
        try:
            for param in parameters:
                if param.name in PARAMS:
                    spec = PARAMS[param.name]
                    spec.check(list(param.value) if isinstance(spec.default, list) else param.value)
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        # VOShell's callback, registered by configure, runs before ours: it gives the lifecycle reason too
        refusal = self._startup_refusal(parameters)
        return refusal if refusal is not None else super()._on_set_parameters(parameters)

    # -- transitions ---------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._configuring = True
        try:
            return self._configure_now()
        finally:
            self._configuring = False

    def _configure_now(self) -> TransitionCallbackReturn:
        for name in MADE_BY_CONFIGURE:
            setattr(self, name, None)
        self._param_callback = None
        self._unconfigured_entities = self._entities()
        self._attach_log()  # what loading the model logs goes to /rosout and the log file too
        try:
            self.params = params_from_values(self._current_values())
            # The extrinsic's tf listener subscribes /tf and /tf_static: a configure that fails after it was
            # made releases it with the rest, or each retry would add one.
            self.extrinsic = ExtrinsicSource(self, self.params)
            self._check_parameter_extrinsic()
            estimator = self._given_estimator or self._load_estimator(self.params)
            self._configure(estimator)  # builds the odometry first
        except ValueError as err:  # the parameters or the model: the node stays unconfigured
            self.get_logger().error(f"configure failed: {err}")
            self._release_all()
            return TransitionCallbackReturn.FAILURE
        except Exception as err:  # anything else: ERROR, then on_error (which finds nothing left)
            self._log_failure("configure", err)
            self._release_all()
            return TransitionCallbackReturn.ERROR
        self._configured = True
        self.get_logger().info("configured: model loaded, outputs created; activate to subscribe")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._open_input()
            return super().on_activate(state)
        except Exception as err:
            self._log_failure("activate", err)
            return TransitionCallbackReturn.ERROR  # on_error releases all, the input it opened included

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._close_input()
            self.get_logger().info("deactivated: image input unsubscribed")
            return super().on_deactivate(state)
        except Exception as err:
            self._log_failure("deactivate", err)
            return TransitionCallbackReturn.ERROR

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._release()
        except Exception as err:
            self._log_failure("cleanup", err)
            return TransitionCallbackReturn.ERROR  # on_error releases what _release left
        self._configured = False
        self._release_all()  # nothing left to release: clears the references
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """After a transition returned ERROR: release everything the node still holds, so that it goes to
        unconfigured clean and a later configure builds one fresh set."""
        self._release_all()
        self.get_logger().info(
            f"error handled (a transition from {state.label} failed): everything released, the node is "
            "unconfigured; configure builds it again"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        if hasattr(self, "_unconfigured_entities"):  # not for a node whose construction failed
            self._release_all()
        super().destroy_node()

    # -- releasing -----------------------------------------------------------------------------------
    def _log_failure(self, what: str, err: Exception) -> None:
        self.get_logger().error(f"{what} failed: {type(err).__name__}: {err}")
        self.get_logger().debug("".join(traceback.format_exception(err)))

    def _try(self, what: str, step: Callable[[], Any]) -> Any:
        """`step()`, or None when it raised (logged): releasing goes on with the next step."""
        try:
            return step()
        except Exception as err:
            self._log_failure(what, err)
            return None

    def _entities(self) -> set[Any]:
        return {*self.publishers, *self.subscriptions, *self.services, *self.clients, *self.timers}

    def _release_all(self) -> None:
        """Undo configure and activate, whole or in part, whatever a failure left: never raises (what cannot
        be released is logged) and each step is a no-op for what is already released."""
        if self._configured:
            self._configured = False
            self._try("release", self._release)  # as cleanup does; what it leaves is released below
        if self.camera_input is not None:
            self._try("closing the image input", self.camera_input.close)
            self.camera_input = None
        stopped = True
        if self.worker is not None:
            stopped = bool(self._try("stopping the inference thread", lambda: self.worker.stop(timeout=10.0)))
        for part in (self.tf, self.extrinsic):
            if part is not None:
                self._try(f"closing {type(part).__name__}", part.close)
        if self._param_callback is not None:
            with contextlib.suppress(ValueError):  # already removed by _release
                self.remove_on_set_parameters_callback(self._param_callback)
            self._param_callback = None
        self._detach_log()
        if self.vo is not None:
            self._try("closing the odometry", lambda: self._close_odometry(stopped))
        for name in MADE_BY_CONFIGURE:
            setattr(self, name, None)
        # what a configure or an activate made and nothing above closed (publishers made before a failure)
        left = self._entities() - self._unconfigured_entities
        destroy = (
            (self.publishers, self.destroy_publisher),
            (self.subscriptions, self.destroy_subscription),
            (self.services, self.destroy_service),
            (self.clients, self.destroy_client),
            (self.timers, self.destroy_timer),
        )
        for entities, destroy_one in destroy:
            for entity in [e for e in entities if e in left]:
                self._try(f"destroying {entity!r}", lambda entity=entity, d=destroy_one: d(entity))


def main(argv: list[str] | None = None) -> int:
    """`ros2 run banet_vo vo_lifecycle_node [--ros-args -p model:=...]`, then configure and activate it."""
    return node_main(
        VOLifecycleNode, HELP, argv, executable="vo_lifecycle_node", prog="banet_vo", log_tag="banet_vo"
    )


if __name__ == "__main__":
    sys.exit(main())
