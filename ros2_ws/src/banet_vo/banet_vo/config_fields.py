"""Settings written once: a config dataclass field carries its default, description and range.

A field declared with `setting(default, "what it means", range=(lo, hi))` keeps the description and range
in its `metadata`; the ROS parameter tables (`banet_vo.ros.parameters.ParameterSpec.from_field`) and the
command lines (`add_field_argument`) read name, default, description and range from there, so a default
cannot drift between the core, the node and a CLI. `check_keys` / `config_from_dict` read a stored config
back and refuse keys that are not fields. No ROS here: the CLIs import this without rclpy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

__all__ = [
    "FieldInfo",
    "add_field_argument",
    "check_keys",
    "check_ranges",
    "config_from_dict",
    "field_info",
    "setting",
]


def setting(
    default: Any,
    description: str,
    *,
    range: tuple[float, float] | None = None,  # same keyword as ParameterSpec
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with `default` and its description / inclusive range / choices as metadata."""
    metadata = {"description": description, "range": range, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def check_ranges(config: Any, names: tuple[str, ...] | None = None) -> None:
    """ValueError unless each named field (default: every field) of dataclass instance `config` is a
    number of its default's kind (int or float, never bool) inside the field's `range` metadata, or, for a
    field with `choices` metadata, one of them."""
    by_name = {f.name: f for f in dataclasses.fields(config)}
    for name in by_name if names is None else names:
        f = by_name[name]
        value = getattr(config, name)
        choices = f.metadata.get("choices")
        if choices is not None:
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
            continue
        low, high = f.metadata["range"]
        kind = int if isinstance(f.default, int) else float
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and value != int(value))
        ):
            raise ValueError(f"{name} must be {'an int' if kind is int else 'a number'}, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def check_keys(data: Any, config_cls: type, what: str) -> None:
    """ValueError unless `data` is a dict whose keys are all fields of dataclass `config_cls`: a stored or
    hand-written config with a typo must not silently fall back to a default."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; known keys are {sorted(known)}")


def json_object(text: str, what: str) -> dict:
    """The dict a JSON text holds; ValueError naming `what` for text that is not JSON or not an object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def config_from_dict(config_cls: type, data: dict | str, what: str) -> Any:
    """`config_cls(**data)` once check_keys has passed; `data` may also be that dict's JSON text."""
    if isinstance(data, str):
        data = json_object(data, what)
    check_keys(data, config_cls, what)
    return config_cls(**data)


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """What a config field says about itself."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None
    choices: tuple[str, ...] | None


def field_info(config_cls: type, name: str) -> FieldInfo:
    """Default, description, range and choices of field `name` of dataclass `config_cls`.

    KeyError for an unknown field; ValueError for a field without a plain default or a description
    (declare it with `setting`): a table or CLI must not invent either.
    """
    by_name = {f.name: f for f in dataclasses.fields(config_cls)}
    f = by_name[name]
    if f.default is dataclasses.MISSING:
        raise ValueError(f"{config_cls.__name__}.{name} has no plain default")
    if not f.metadata.get("description"):
        raise ValueError(f"{config_cls.__name__}.{name} has no description (declare it with setting())")
    return FieldInfo(name, f.default, f.metadata["description"], f.metadata["range"], f.metadata["choices"])


def add_field_argument(
    parser: argparse.ArgumentParser | Any, flag: str, config_cls: type, name: str, **kwargs: Any
) -> None:
    """`parser.add_argument(flag, ...)` with default, type and help from field `name` of `config_cls`.

    A bool field that defaults to False becomes a store_true switch. `kwargs` pass through (e.g. dest).
    """
    info = field_info(config_cls, name)
    help_text = info.description + (f" [range {info.range[0]} .. {info.range[1]}]" if info.range else "")
    if isinstance(info.default, bool):
        if info.default:
            raise ValueError(f"{config_cls.__name__}.{name}: a flag cannot switch off a True default")
        parser.add_argument(flag, action="store_true", help=help_text, **kwargs)
        return
    parser.add_argument(
        flag,
        type=type(info.default),
        default=info.default,
        choices=info.choices,
        help=help_text + " (default: %(default)s)",
        **kwargs,
    )
