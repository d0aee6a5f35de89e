from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from distfer.classes import CLASSES, class_id, counts_per_class, remap
from distfer.config import Config, check_range
from distfer.errors import ConfigError, DataError


@dataclass(frozen=True)
class _Inner(Config):
    k: int = 3


@dataclass(frozen=True)
class _Demo(Config):
    name: str
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    inner: _Inner = _Inner()
    opt: int | None = None

    def validate(self) -> None:
        check_range(self, "lr", low=0, low_open=True)


def test_roundtrip_yaml_and_fingerprint(tmp_path):
    c = _Demo.from_dict({"name": "x", "lr": 1, "sizes": [4, 5], "inner": {"k": 7}})
    assert c.lr == 1.0 and isinstance(c.lr, float)
    assert c.sizes == (4, 5) and c.inner.k == 7
    path = tmp_path / "c.yaml"
    c.to_yaml(path)
    back = _Demo.from_yaml(path)
    assert back == c
    assert back.fingerprint() == c.fingerprint()
    assert c.replace(lr=0.2).fingerprint() != c.fingerprint()
    assert c.fingerprint("upstream") != c.fingerprint()


@pytest.mark.parametrize(
    "data, match",
    [
        ({"name": "x", "lrr": 1}, "unknown config key 'lrr'.*Did you mean 'lr'"),
        ({"name": "x", "lr": "fast"}, "'lr'.*expected a number"),
        ({"name": "x", "lr": -1}, "'lr'.*must be > 0"),
        ({"name": "x", "mode": "c"}, "'mode'.*choose one of 'a', 'b'"),
        ({"name": "x", "inner": {"j": 1}}, "unknown config key 'inner.j'"),
        ({"name": "x", "inner": {"k": "z"}}, "'inner.k'.*integer"),
        ({"name": "x", "opt": True}, "'opt'"),
        ({}, "missing required config key.*name"),
    ],
)
def test_bad_values_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        _Demo.from_dict(data)


def test_replace_rejects_unknown_and_revalidates():
    c = _Demo(name="x")
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        c.replace(nope=1)
    with pytest.raises(ConfigError, match="must be > 0"):
        c.replace(lr=0.0)


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        _Demo.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        _Demo.from_yaml(bad)


def test_classes_order_and_aliases():
    assert CLASSES == ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
    assert class_id("Happy") == 3 and class_id("angry") == 5 and class_id("SAD") == 4
    with pytest.raises(DataError, match="unknown expression class 'Contempt'"):
        class_id("Contempt")
    assert remap([1, 7], {i: i - 1 for i in range(1, 8)}, what="f").tolist() == [0, 6]
    with pytest.raises(DataError, match="label id 9 is out of range"):
        remap([9], {i: i - 1 for i in range(1, 8)}, what="f")
    assert counts_per_class([0, 0, 6, -1])["unknown"] == 1


@dataclass(frozen=True)
class _Pair(Config):
    scale: tuple[float, float] = (0.2, 1.0)


def test_fixed_length_tuple_fields():
    assert _Pair.from_dict({"scale": [0.5, 1]}).scale == (0.5, 1.0)
    with pytest.raises(ConfigError, match="expected 2 items"):
        _Pair.from_dict({"scale": [0.5]})
    with pytest.raises(ConfigError, match=r"'scale\[1\]'.*number"):
        _Pair.from_dict({"scale": [0.5, "x"]})
