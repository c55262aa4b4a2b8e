"""Typed configuration loaded from YAML: one loader for every run config.

Each config class lives beside the code that owns it (``ModelConfig`` in ``nowcast.model``);
this module only reads YAML safely, applies ``key=value`` overrides and turns pydantic's
validation errors into one message that names the key and the file. YAML is imported where it
is read or written, so the config classes (``nowcast.model`` imports ``Section``) cost pydantic only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from nowcast.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ``["train.lr=1e-3", "model.hidden_channels=[8,16]"]`` into a nested dict.

    Values are parsed as YAML so numbers, booleans and lists keep their types.
    """
    import yaml

    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from e
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    return data


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def validate(cls: type[T], data: dict[str, Any], source: str = "<config>") -> T:
    """Validate a mapping into ``cls``; a ConfigError names each bad key and the source."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, source)) from None


def load_config(cls: type[T], path: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """Load ``path`` (YAML, may be None for all defaults), apply overrides, validate into ``cls``."""
    data = read_yaml(path) if path is not None else {}
    data = _merge(data, parse_overrides(overrides))
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += f" (with overrides {' '.join(overrides)})"
    return validate(cls, data, source)


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML, saved beside every store, checkpoint and forecast."""
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
