"""Typed dataclass configs: load/save JSON (or TOML), and dotted ``key=value`` overrides.

Every run saves its fully resolved config, so ``config.json`` alone rebuilds the run; the CLI,
JSON/TOML files and presets all change the same fields through ``apply_overrides``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import CapcacheError

T = TypeVar("T")


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build a (nested) dataclass from a dict; unknown keys are an error, not silently dropped."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise CapcacheError(f"unknown config field(s) {', '.join(sorted(where + k for k in unknown))}; "
                            f"valid: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_dict(kind, value, f"{where}{name}.")
        kwargs[name] = value
    return cls(**kwargs)


def load_file(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CapcacheError(f"config file {p} not found")
    try:
        if p.suffix == ".toml":
            import tomllib
            return tomllib.loads(p.read_text())
        return json.loads(p.read_text())
    except ValueError as e:
        raise CapcacheError(f"{p}: not valid {p.suffix.lstrip('.') or 'JSON'} ({e})") from e


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_overrides(config: T, overrides: list[str]) -> T:
    """``["optim.lr=1e-3", "model.dropout=0.3"]`` -> a new config with those fields set (typed)."""
    data = to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise CapcacheError(f"override {item!r} is not KEY=VALUE (e.g. optim.lr=1e-3)")
        cls, node, parts = type(config), data, key.strip().split(".")
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], dict):
                raise CapcacheError(f"unknown config section {part!r} in {key!r}")
            cls, node = typing.get_type_hints(cls)[part], node[part]
        field = parts[-1]
        hints = typing.get_type_hints(cls)
        if field not in hints:
            raise CapcacheError(f"unknown config field {key!r}; valid in this section: {', '.join(sorted(hints))}")
        node[field] = parse_value(raw.strip(), hints[field], key)
    return from_dict(type(config), data)


def parse_value(raw: str, kind: Any, key: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null"):
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in (int, float, str):
            return kind(raw)
        return json.loads(raw)
    except ValueError:
        raise CapcacheError(f"{key}={raw!r}: expected {getattr(kind, '__name__', kind)}") from None


def resolve(cls: type[T], presets: dict[str, dict], preset: str | None, file_data: dict | None,
            overrides: list[str] | None, what: str = "preset") -> T:
    """Defaults <- preset <- config file <- ``key=value`` overrides, checked (``cls.check()``)."""
    data = to_dict(cls())
    if preset:
        if preset not in presets:
            raise CapcacheError(f"unknown {what} {preset!r}; available: {', '.join(presets)}")
        data = merge(data, presets[preset])
    data = merge(data, file_data or {})
    return apply_overrides(from_dict(cls, data), overrides or []).check()
