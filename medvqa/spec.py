"""Typed, frozen parameter specs built from plain config mappings.

Every stage receives its parameters as a mapping (Snakemake ``params:`` or parsed CLI
arguments) and turns it into a frozen dataclass with ``Spec.from_mapping``. Unknown and
missing keys fail at once, naming the key and the spec, so a typo in ``config.yaml``
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
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
