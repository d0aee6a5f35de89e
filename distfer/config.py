"""Frozen, validated configuration dataclasses, YAML load/dump and stable fingerprints.

Every stage takes one frozen dataclass derived from :class:`Config`. Building one validates it
once: an unknown key, a value of the wrong type, or a value out of range raises
:class:`~distfer.errors.ConfigError` naming the key and what is allowed. Configs are never
mutated; :meth:`Config.replace` returns a new, re-validated one.

Conventions for subclasses::

    @dataclass(frozen=True)
    class KMeansConfig(Config):
        clusters: int = 100
        niter: int = 20

        def validate(self) -> None:
            check_range(self, "clusters", low=1)

Supported field types: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``X | None``,
``Literal[...]``, ``tuple[X, ...]`` (lists accepted), ``dict[str, X]`` and nested ``Config``
subclasses (built from mappings).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import yaml

from distfer.errors import ConfigError
from distfer.fsutil import atomic_write_text

C = TypeVar("C", bound="Config")

__all__ = [
    "Config",
    "ConfigError",
    "check_range",
    "check_choice",
    "load_yaml_mapping",
]


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it in canonical form (tuples, Configs)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"config key {key!r}: {value!r} is not allowed; choose one of "
                f"{', '.join(repr(a) for a in allowed)}{extra}"
            )
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"config key {key!r}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(args, value)))
    if origin is dict:
        kt, vt = get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return tp.from_dict(value, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for {key!r}")  # a bug, not user error


def _plain(value: Any) -> Any:
    """Convert a config value to plain YAML/JSON types."""
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of all distfer configs: frozen, validated at construction, hashable by content."""

    #: fields left out of :meth:`fingerprint` (e.g. worker counts that do not change results)
    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            coerced = _coerce(getattr(self, f.name), hints[f.name], f.name)
            object.__setattr__(self, f.name, coerced)
        self.validate()

    def validate(self) -> None:
        """Range and cross-field checks; override in subclasses (raise ConfigError)."""

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], *, prefix: str = "") -> C:
        """Build from a mapping; unknown keys and missing required keys are errors.

        Raises:
            ConfigError: naming the offending key (with ``prefix``) and the allowed keys.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
        names = cls.field_names()
        for k in data:
            if k not in names:
                hint = difflib.get_close_matches(str(k), names, n=1)
                extra = f" Did you mean {hint[0]!r}?" if hint else ""
                raise ConfigError(
                    f"unknown config key {prefix + str(k)!r} for {cls.__name__}.{extra} "
                    f"Allowed keys: {', '.join(names)}"
                )
        required = [
            f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [k for k in required if k not in data]
        if missing:
            raise ConfigError(f"{cls.__name__}: missing required config key(s) {', '.join(prefix + m for m in missing)}")
        try:
            return cls(**dict(data))
        except ConfigError as e:
            if prefix and not str(e).startswith(prefix):
                raise ConfigError(str(e).replace("config key '", f"config key '{prefix}", 1)) from None
            raise

    @classmethod
    def from_yaml(cls: type[C], path: str | Path, **overrides: Any) -> C:
        """Load from a YAML file; ``overrides`` (e.g. from the CLI) win over the file.

        Raises:
            ConfigError: the file is missing, not YAML, or holds bad keys/values.
        """
        data = dict(load_yaml_mapping(path))
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def replace(self: C, **changes: Any) -> C:
        """A new config with ``changes`` applied (validated again; unknown keys are errors)."""
        bad = [k for k in changes if k not in self.field_names()]
        if bad:
            raise ConfigError(
                f"unknown config key {bad[0]!r} for {type(self).__name__}; "
                f"allowed keys: {', '.join(self.field_names())}"
            )
        return dataclasses.replace(self, **changes)

    def fingerprint(self, *inputs: str) -> str:
        """Stable 16-hex-digit content hash of this config (minus excluded fields) and ``inputs``.

        ``inputs`` are the fingerprints of upstream artefacts, so that a stage's fingerprint
        changes whenever anything it depends on changes.
        """
        d = {k: v for k, v in self.to_dict().items() if k not in self._fingerprint_exclude}
        payload = json.dumps([type(self).__name__, d, list(inputs)], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---- validation helpers -----------------------------------------------------------------
def check_range(
    cfg: Config,
    key: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ConfigError unless ``low <= cfg.key <= high`` (open ends with ``*_open``)."""
    v = getattr(cfg, key)
    if v is None:
        return
    bad = (
        (low is not None and (v <= low if low_open else v < low))
        or (high is not None and (v >= high if high_open else v > high))
    )
    if bad:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        if low is None:
            want = f"<{'' if high_open else '='} {high}"
        elif high is None:
            want = f">{'' if low_open else '='} {low}"
        else:
            want = f"in {lo}, {hi}"
        raise ConfigError(f"config key {key!r} of {type(cfg).__name__} is {v!r}; it must be {want}")


def check_choice(cfg: Config, key: str, choices: typing.Iterable[Any]) -> None:
    """Raise ConfigError unless ``cfg.key`` is one of ``choices`` (for dynamic choice sets)."""
    choices = list(choices)
    v = getattr(cfg, key)
    if v not in choices:
        raise ConfigError(
            f"config key {key!r} of {type(cfg).__name__} is {v!r}; choose one of "
            f"{', '.join(repr(c) for c in choices)}"
        )


def load_yaml_mapping(path: str | Path) -> Mapping[str, Any]:
    """Read a YAML file holding a mapping.

    Raises:
        ConfigError: the file is missing, unreadable, not valid YAML, or not a mapping.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; check the path")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values, not {type(data).__name__}")
    return data


# ---- stage configs ------------------------------------------------------------------------
# Each stage's config lives below, one section per concern, in pipeline order. A stage module
# imports its config from here; the CLI and the pipeline build them through from_dict/replace.
