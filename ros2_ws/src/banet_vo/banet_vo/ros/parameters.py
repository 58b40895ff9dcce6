"""Parameter tables for our ROS nodes: one spec per parameter (default, description, range, choices).

A node's params module lists its `ParameterSpec`s in a `ParameterTable`; the table declares every entry
with a ParameterDescriptor (description, IntegerRange/FloatingPointRange; read-only unless the spec is
`dynamic`), checks type, choice and range of each value (also for values given without rclpy), and returns
{name: value}. The node's own module then builds its validated dataclass from those values. Every failure
is a ValueError that starts with "parameter <name>:", so a node stops at start with a clear message. A
parameter given to the node that no spec declares (a typo such as `queue_sise:=5`) is such an error too,
with the closest known name suggested: rclpy itself would silently ignore it and start with the default.
A renamed parameter keeps its old name working for one release (`RenamedParameter`): given at start
(command line, params file, overrides), its value goes to the new name(s) with a warning through the
node's logger; the old name is declared too (no value, any type), so that a node can carry a run-time
change of it the same way: `expand_renamed` in its pre-set-parameters callback adds the new names to the
same request, so they are set at once with it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from banet_vo.config_fields import field_info


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter. The default's type is the parameter's type: bool, int, float, str or a list of
    floats (a fixed-length vector, read back as a tuple)."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive, for ints and floats
    choices: tuple[str, ...] | None = None  # for strings
    dynamic: bool = False  # settable at run time (the node validates and applies the change)

    @classmethod
    def from_field(
        cls, config_cls: type, field: str, name: str | None = None, **overrides: Any
    ) -> ParameterSpec:
        """The spec of a config field declared with `banet_vo.config_fields.setting`: default, description,
        range and choices come from the dataclass (`name` defaults to the field's, e.g. "ba_" + field)."""
        info = field_info(config_cls, field)
        spec = {"default": info.default, "description": info.description, "range": info.range}
        spec["choices"] = info.choices
        spec.update(overrides)
        return cls(name or field, **spec)

    @property
    def is_integer(self) -> bool:
        return isinstance(self.default, int) and not isinstance(self.default, bool)

    def descriptor(self, writable: bool = False) -> ParameterDescriptor:
        """Descriptor with the description (choices appended) and the range; read-only unless dynamic or
        `writable` (a node that decides itself when a start-up value may change, e.g. a lifecycle node)."""
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        read_only = not (self.dynamic or writable)
        descriptor = ParameterDescriptor(name=self.name, description=text, read_only=read_only)
        if self.range is not None:
            lo, hi = self.range
            if self.is_integer:
                descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            else:
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
                ]
        return descriptor

    def check(self, value: Any) -> Any:
        """`value` checked for type, choice and range; ints are accepted for floats (returned as float)
        and a list parameter comes back as a tuple of floats. ValueError naming the parameter."""
        default = self.default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif self.is_integer:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = _is_number(value)
            value = float(value) if ok else value
        elif isinstance(default, list):
            ok = (
                isinstance(value, list | tuple)
                and len(value) == len(default)
                and all(_is_number(v) for v in value)
            )
            value = tuple(float(v) for v in value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ValueError(
                f"parameter {self.name}: expected {type(default).__name__} like {default!r}, got {value!r}"
            )
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter {self.name}: must be one of {self.choices}, got {value!r}")
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise ValueError(
                f"parameter {self.name}: {value!r} is outside [{self.range[0]}, {self.range[1]}]"
            )
        return value

    def help_line(self) -> str:
        """`  name (default d): description (one of: ...) [range lo .. hi]`, for a --help text."""
        extra = f" (one of: {', '.join(self.choices)})" if self.choices else ""
        extra += f" [range {self.range[0]} .. {self.range[1]}]" if self.range else ""
        extra += " (settable at run time)" if self.dynamic else ""
        return f"  {self.name} (default {self.default!r}): {self.description}{extra}"


@dataclass(frozen=True)
class RenamedParameter:
    """An old parameter name that still works, at start only, until `removed_in`: its value is given to
    each of `new` (a name that was split in two takes both)."""

    old: str
    new: tuple[str, ...]
    removed_in: str

    def warning(self) -> str:
        return (
            f"parameter {self.old} is deprecated and will be removed in {self.removed_in}: "
            f"its value is used for {' and '.join(self.new)}; set {'/'.join(self.new)} instead"
        )


class ParameterTable:
    """The ordered parameters of one node; iterating yields the specs."""

    def __init__(self, *specs: ParameterSpec, renamed: tuple[RenamedParameter, ...] = ()) -> None:
        self._specs = {spec.name: spec for spec in specs}
        if len(self._specs) != len(specs):
            names = [spec.name for spec in specs]
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"specs: parameter names must be unique, repeated: {repeated}")
        self.renamed = {r.old: r for r in renamed}
        for r in renamed:
            if r.old in self._specs or any(n not in self._specs for n in r.new):
                raise ValueError(f"renamed {r.old}: the old name must be gone and {r.new} declared")

    def __iter__(self) -> Iterator[ParameterSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> ParameterSpec:
        return self._specs[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def defaults(self) -> dict[str, Any]:
        return {name: spec.default for name, spec in self._specs.items()}

    def values(self, given: Mapping[str, Any], warn: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Every parameter checked, taking `given` where named and the default elsewhere. A renamed old
        name is carried to its new names (`warn` gets the deprecation message). ValueError for an unknown
        name or a bad value (naming the parameter)."""
        given = self.carry_renamed(given, warn)
        unknown = sorted(set(given) - set(self._specs))
        if unknown:
            raise ValueError(self.unknown_message(unknown[0]))
        return {name: spec.check(given.get(name, spec.default)) for name, spec in self._specs.items()}

    def carry_renamed(self, given: Mapping[str, Any], warn: Callable[[str], None] | None) -> dict[str, Any]:
        """`given` with each deprecated name replaced by its new names; ValueError when a new name is given
        too (which one was meant cannot be told)."""
        out = dict(given)
        for old in [name for name in given if name in self.renamed]:
            r = self.renamed[old]
            clash = [n for n in r.new if n in given]
            if clash:
                raise ValueError(
                    f"parameter {old}: deprecated name of {clash[0]}, which is given too; set only {clash[0]}"
                )
            if warn is not None:
                warn(r.warning())
            value = out.pop(old)
            out.update({n: value for n in r.new})
        return out

    def expand_renamed(
        self, parameters: list[Parameter], warn: Callable[[str], None] | None
    ) -> list[Parameter]:
        """For a pre-set-parameters callback: `parameters` with each deprecated name followed by its new names
        at its value, so that all are set in one step (the node then shows the values it uses; a node cannot
        set parameters from inside its own set callback). A deprecated name given together with a new name, or
        with a value a new name refuses, is left as it is: `renamed_given` then lets the set-parameters
        callback refuse it with the reason."""
        names = {param.name for param in parameters}
        out = list(parameters)
        for param in parameters:
            r = self.renamed.get(param.name)
            if r is None or any(n in names for n in r.new):
                continue
            try:
                values = {n: _as_set(self[n].check(param.value)) for n in r.new}
            except ValueError:
                continue
            if warn is not None:
                warn(r.warning())
            out.extend(Parameter(n, value=v) for n, v in values.items())
        return out

    def renamed_given(self, changes: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
        """The deprecated names in `old` ({name: value}) that still need carrying into `changes`: those that
        `expand_renamed` did not already carry (every new name present at the old name's value)."""
        left = {}
        for name, value in old.items():
            r = self.renamed[name]
            try:
                carried = all(n in changes and changes[n] == _as_set(self[n].check(value)) for n in r.new)
            except ValueError:
                carried = False
            if not carried:
                left[name] = value
        return left

    def closest(self, name: str) -> str | None:
        """The known name most like `name` (difflib ratio >= 0.6), or None."""
        matches = difflib.get_close_matches(name, self.names, n=1, cutoff=0.6)
        return matches[0] if matches else None

    def unknown_message(self, name: str) -> str:
        close = self.closest(name)
        hint = f"did you mean {close}?" if close else f"known: {', '.join(sorted(self._specs))}"
        return f"parameter {name}: not a parameter of this node; {hint} (the node's --help lists them)"

    def check_no_unknown(self, node: Node) -> None:
        """ValueError naming the first parameter given to `node` (command line, params file or
        parameter_overrides) that this table does not declare; rclpy's own parameters are allowed."""
        # rclpy keeps every override meant for this node (global and node-specific) in this attribute; an
        # undeclared one is otherwise dropped without a word, so this is the only place to see it.
        given = getattr(node, "_parameter_overrides", {})
        for name in sorted(given):
            if name in self._specs or name in self.renamed or name in RCLPY_PARAMETERS:
                continue
            if name.startswith(RCLPY_PREFIXES):
                continue
            raise ValueError(self.unknown_message(name))

    def declare(self, node: Node, reject_unknown: bool = True, *, writable: bool = False) -> dict[str, Any]:
        """Declare every parameter on `node` (with its descriptor) and return the checked values. rclpy's
        own refusals (out of range, wrong type of an override) and, with reject_unknown, parameters the
        table does not know become ValueErrors. With `writable`, no descriptor is read-only: the node's own
        set-parameters callback then refuses a start-up parameter when it cannot take it (a lifecycle node
        takes one while unconfigured)."""
        if reject_unknown:
            self.check_no_unknown(node)
        overrides = getattr(node, "_parameter_overrides", {})  # as in check_no_unknown
        old = {name: overrides[name].value for name in overrides if name in self.renamed}
        new_given = {name: None for name in overrides if name in self._specs}
        # the new names are declared with the old name's value, so that the node holds what it uses
        carried = self.carry_renamed({**new_given, **old}, node.get_logger().warning)
        given: dict[str, Any] = {}
        for spec in self:
            default = (
                carried[spec.name] if spec.name in carried and spec.name not in new_given else spec.default
            )
            if isinstance(spec.default, float) and isinstance(default, int) and not isinstance(default, bool):
                default = float(default)
            if spec.name in overrides:
                # our words for a bad value, before rclpy's ("Invalid parameter value (-1.5) for parameter.
                # Reason: Parameter camera_height out of range ...")
                spec.check(overrides[spec.name].value)
            try:
                param = node.declare_parameter(spec.name, default, spec.descriptor(writable))
            except (ParameterException, TypeError) as err:
                raise ValueError(f"parameter {spec.name}: {err}") from err
            # a double-array parameter reads back as array.array
            given[spec.name] = list(param.value) if isinstance(spec.default, list) else param.value
        for r in self.renamed.values():
            description = f"deprecated: {r.warning()}"
            node.declare_parameter(
                r.old, None, ParameterDescriptor(description=description, dynamic_typing=True)
            )
        return self.values(given)

    def help_text(self) -> str:
        """One help_line per parameter, in table order."""
        return "\n".join(spec.help_line() for spec in self)


def _as_set(value: Any) -> Any:
    """A checked value as rclpy sets it and a node's set callback holds it (a list parameter as a list)."""
    return list(value) if isinstance(value, tuple) else value


# Parameters rclpy declares or reads itself (not ours to refuse).
RCLPY_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
RCLPY_PREFIXES = ("qos_overrides.",)


def subset(values: Mapping[str, Any], *names: str, prefix: str = "") -> dict[str, Any]:
    """{name: values[prefix + name]} for each name: keyword arguments for a config built from a table
    (e.g. `WindowConfig(**subset(v, "passes", "lm_iterations", prefix="ba_"))`)."""
    return {name: values[prefix + name] for name in names}
