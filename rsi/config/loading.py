"""Typed YAML configs: parse YAML and `a.b.c=value` overrides, validate, explain errors in words.

Generic over the root pydantic model, so the schema (`rsi.config.schema`) holds only settings.
Validators in a schema raise `Invalid` (one key) or `CrossField` (several keys); `validate`
turns those and pydantic's own errors into one `ConfigError` paragraph naming each key path,
the bad value and what is allowed, plus the `--set` override that set it.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError

from rsi.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Invalid(ValueError):
    """A validator's complaint: why the value is wrong, and (optionally) what is allowed instead."""

    def __init__(self, reason: str, allowed: str | None = None, show_got: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.allowed, self.show_got = reason, allowed, show_got


class CrossField(ValueError):
    """Problems that involve several keys; each is (key paths, complete message)."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]) -> None:
        super().__init__(" ".join(msg for _, msg in problems))
        self.problems = problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in this mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def parse_yaml(text: str, origin: str) -> dict:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{origin}{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: must be a mapping of config keys, got a {type(data).__name__}")
    return data


def parse_override(root: type[BaseModel], override: str) -> tuple[list[str], Any]:
    key, eq, raw = override.partition("=")
    keys = key.strip().split(".")
    if not eq:
        _check_keys(root, keys, override)
        section, _ = _walk(root, keys[:-1])
        raise ConfigError(
            f"override '{override}' has no '='; write it as {key.strip()}=VALUE. "
            f"Allowed keys {_under(keys[:-1])}: {', '.join(sorted(section.model_fields))}"
        )
    _check_keys(root, keys, override)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", e)
        raise ConfigError(f"override '{override}': the value {raw!r} is not valid YAML ({problem})") from None
    return keys, value


def _walk(root: type[BaseModel], keys: Sequence[str]) -> tuple[type[BaseModel], int]:
    """Follow `keys` through the schema; return the last section reached and how many keys it took."""
    model = root
    for i, key in enumerate(keys):
        field = model.model_fields.get(key)
        sub = _section_type(field.annotation) if field else None
        if sub is None:
            return model, i
        model = sub
    return model, len(keys)


def _check_keys(root: type[BaseModel], keys: Sequence[str], override: str) -> None:
    model, n = _walk(root, keys)
    if n == len(keys):
        return  # the whole path is a section: setting it to a mapping is fine
    key = keys[n]
    path = ".".join(keys[: n + 1])
    if key not in model.model_fields:
        raise ConfigError(_unknown_key_msg(path, keys[:n], model) + f" (in override '{override}')")
    if n + 1 < len(keys):
        raise ConfigError(
            f"config key '{'.'.join(keys)}' is not allowed (in override '{override}'): "
            f"'{path}' is a value, not a section"
        )


def set_key(data: dict, keys: Sequence[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if isinstance(value, dict) and isinstance(node.get(keys[-1]), dict):
        node[keys[-1]] = _merge(node[keys[-1]], value)
    else:
        node[keys[-1]] = value


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


Check = Callable[[Any], list[tuple[tuple[str, ...], str]]]  # a valid config -> problems (key paths, message)


def validate(root: type[M], data: dict, origin: str | None, set_by: dict[str, str], checks: Sequence[Check] = ()
             ) -> M:
    """`root.model_validate(data)`, then each of `checks` on the result (those of a layer above the
    config: what its names name), with every problem turned into one `ConfigError` paragraph."""
    try:
        cfg = root.model_validate(data)
    except ValidationError as e:
        messages = [msg for err in e.errors() for msg in _messages(root, err, set_by)]
    else:
        messages = [_with_override(msg, paths, set_by) for check in checks for paths, msg in check(cfg)]
        if not messages:
            return cfg
    head = f"invalid config (from {origin}): " if origin else "invalid config: "
    raise ConfigError(head + " ".join(messages))


def _messages(root: type[BaseModel], err: Any, set_by: dict[str, str]) -> list[str]:
    ctx = err.get("ctx") or {}
    exc = ctx.get("error")
    if isinstance(exc, CrossField):
        return [_with_override(msg, paths, set_by) for paths, msg in exc.problems]
    loc = [str(part) for part in err["loc"]]
    path = ".".join(loc)
    if err["type"] == "extra_forbidden":
        model, _ = _walk(root, loc[:-1])
        return [_with_override(_unknown_key_msg(path, loc[:-1], model) + ".", (path,), set_by)]
    if isinstance(exc, Invalid):
        reason, allowed, show_got = exc.reason, exc.allowed or _allowed(root, loc), exc.show_got
    else:
        reason, allowed, show_got = err["msg"], _allowed(root, loc), True
    got = f" (got {_show(err.get('input'))})" if show_got else ""
    return [_with_override(f"config key '{path}': {reason}{got}. Allowed: {allowed}.", (path,), set_by)]


def _with_override(msg: str, paths: Sequence[str], set_by: dict[str, str]) -> str:
    for key, override in set_by.items():
        if any(p == key or p.startswith(key + ".") or key.startswith(p + ".") for p in paths):
            return f"{msg} [set by override '{override}']"
    return msg


def _unknown_key_msg(path: str, parent: Sequence[str], model: type[BaseModel]) -> str:
    allowed = sorted(model.model_fields)
    hint = difflib.get_close_matches(path.rsplit(".", 1)[-1], allowed, n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"config key '{path}' is not allowed{did_you_mean}; allowed keys {_under(parent)}: {', '.join(allowed)}"


def _under(parent: Sequence[str]) -> str:
    return f"under '{'.'.join(parent)}'" if parent else "at the top level"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The config section class in `annotation` (`X` or `X | None`), else None."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _allowed(root: type[BaseModel], loc: Sequence[str]) -> str:
    """What a value at `loc` may be, in words, read from the schema."""
    model, n = _walk(root, loc)
    if n == len(loc):
        return f"a mapping with keys {', '.join(sorted(model.model_fields))}"
    field = model.model_fields.get(loc[n])
    if field is None:
        return "see the schema in rsi/config/schema.py"
    ann = field.annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) is Literal:
        return ", ".join(repr(a) for a in args)
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
        sub = _section_type(ann)
        if sub is not None:
            return f"a mapping with keys {', '.join(sorted(sub.model_fields))}, or null"
    kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(ann, str(ann))
    bounds = []
    for m in field.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{op} {getattr(m, attr)}")
    return kind + (" " + " and ".join(bounds) if bounds else "")


def apply_overrides(root: type[BaseModel], data: dict, overrides: Sequence[str]) -> dict[str, str]:
    """Set each `a.b.c=value` override in `data` (values parsed as YAML); return {key path: override}."""
    set_by = {}
    for override in overrides:
        keys, value = parse_override(root, override)
        set_key(data, keys, value)
        set_by[".".join(keys)] = override
    return set_by
