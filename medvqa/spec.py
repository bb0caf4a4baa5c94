"""Typed, frozen parameter specs built from plain config mappings.

Every stage receives its parameters as a mapping (Snakemake ``params:`` or parsed CLI
arguments) and turns it into a frozen dataclass with ``Spec.from_mapping``. Unknown and
missing keys fail at once, naming the key and the spec, so a typo in ``config.yaml``
never silently falls back to a default. Values are checked against the field annotations
(``int``, ``float``, ``str``, ``bool``, ``X | None``, lists and mappings), and each spec's
``validate`` checks ranges and choices: config.yaml's JSON schema holds only structure, so every
value rule lives once, here and in the specs.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

S = TypeVar("S", bound="Spec")


class ConfigError(ValueError):
    """A parameter mapping does not fit its spec (unknown key, missing key, bad value)."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """Base of all stage specs: construct with ``from_mapping`` and check in ``validate``."""

    @classmethod
    def from_mapping(cls: type[S], mapping: Mapping[str, Any] | None, where: str = "") -> S:
        where = where or cls.__name__
        mapping = dict(mapping or {})
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(mapping) - set(fields))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(fields))}"
            )
        missing = sorted(
            name
            for name, f in fields.items()
            if name not in mapping
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ConfigError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
        hints = _field_types(cls)
        for key, value in mapping.items():
            if not _matches(value, hints[key]):
                raise ConfigError(f"{where}: {key}={value!r} is not {_describe(hints[key])}")
        spec = cls(**mapping)
        spec.validate(where)
        return spec

    def validate(self, where: str) -> None:
        """Check value ranges; subclasses raise ``ConfigError`` naming ``where`` and the key."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_choice(where: str, key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {key}={value!r} is not one of {', '.join(map(repr, choices))}")


def check_range(where: str, key: str, value: float, low: float | None = None, high: float | None = None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{where}: {key}={value!r} is outside [{low}, {high}]")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config value fits a field annotation (a YAML list fits a tuple; an int fits a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):  # bool is an int to Python, never to a config
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, (hint, Mapping))
    if hint in (dict, Mapping) or origin in (dict, Mapping):
        return isinstance(value, Mapping) and (
            not args or all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
        )
    if hint in (list, tuple) or origin in (list, tuple):
        return isinstance(value, (list, tuple)) and (not args or all(_matches(v, args[0]) for v in value))
    raise TypeError(f"spec field annotation {hint!r} is not supported by medvqa.spec")


def _describe(hint: Any) -> str:
    """An annotation in a user's words: ``int | None`` → 'an integer or null'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    words = {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    if hint in words:
        return words[hint]
    if hint in (dict, Mapping) or origin in (dict, Mapping) or dataclasses.is_dataclass(hint):
        return "a mapping"
    return "a list"
