"""``model.pt`` files: state dict + metadata, written atomically, read with ``weights_only``.

A distfer checkpoint is ``{"format": "distfer-model", "meta": {...}, "state_dict": {...}}``
where ``meta`` holds ``arch``, ``num_classes``, ``classes``, ``input_size``, ``mean``,
``std``, ``feature_dim``, ``weight_norm``, ``kind`` (``source`` | ``ssl`` | ``adapted``),
``distfer_version`` and free-form ``info``. A plain torchvision ResNet state dict (keys
``conv1.weight`` ... ``fc.weight``) is accepted as a source model: its ``fc`` becomes the head.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

import torch

from distfer import __version__
from distfer.classes import CLASSES
from distfer.errors import ConfigError, DataError
from distfer.fsutil import atomic_write_bytes, require_file
from distfer.models.backbones import infer_resnet_arch
from distfer.models.classifier import IMAGENET_MEAN, IMAGENET_STD, FERModel

Kind = Literal["source", "ssl", "adapted"]
FORMAT = "distfer-model"


def model_meta(model: FERModel, kind: Kind, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata dictionary stored with ``model``."""
    return {
        "arch": model.arch,
        "num_classes": model.num_classes,
        "classes": list(CLASSES[: model.num_classes]),
        "input_size": model.input_size,
        "mean": list(model.mean_values),
        "std": list(model.std_values),
        "feature_dim": model.feature_dim,
        "weight_norm": model.use_weight_norm,
        "kind": kind,
        "distfer_version": __version__,
        "info": dict(info or {}),
    }


def save_model(
    model: FERModel, path: str | Path, *, kind: Kind, info: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (unwrapped from DDP if needed) to ``path`` atomically."""
    model = getattr(model, "module", model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "meta": model_meta(model, kind, info), "state_dict": state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or not a torch file at all
        raise DataError(
            f"cannot read model file {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}; "
            "pass a model.pt written by distfer or a torchvision ResNet state dict"
        ) from None


def _check(path: Path, what: str, found: Any, expected: Any) -> None:
    if expected is not None and found != expected:
        raise DataError(f"model file {path}: {what} is {found!r}, expected {expected!r}")


def _from_torchvision(path: Path, sd: dict[str, torch.Tensor], arch: str | None) -> FERModel:
    try:
        found_arch = infer_resnet_arch(sd)
    except ConfigError as e:
        raise DataError(f"model file {path}: {e}; expected a distfer model.pt") from None
    _check(path, "architecture", found_arch, arch)
    fc = sd.get("fc.weight")
    if fc is None or "fc.bias" not in sd:
        raise DataError(f"model file {path}: the ResNet state dict has no fc.weight/fc.bias head")
    if fc.shape[0] != len(CLASSES):
        raise DataError(
            f"model file {path}: its fc layer has {fc.shape[0]} outputs, expected {len(CLASSES)} "
            f"(the classes {', '.join(CLASSES)} in this order)"
        )
    model = FERModel(found_arch, len(CLASSES), input_size=112, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    mapped = {("head." + k[3:] if k.startswith("fc.") else "encoder." + k): v for k, v in sd.items()}
    _load_state(path, model, mapped)
    return model


def _load_state(path: Path, model: FERModel, sd: dict[str, torch.Tensor]) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1:2] or [str(e)]
        raise DataError(f"model file {path} does not fit its architecture: {first[0].strip()[:300]}") from None


def load_model(
    path: str | Path,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    kind: Kind | tuple[Kind, ...] | None = None,
) -> tuple[FERModel, dict[str, Any]]:
    """Load a model file on the CPU, checking what the caller expects.

    Args:
        path: a distfer ``model.pt`` or a plain torchvision ResNet state dict.
        arch: expected architecture, or None to accept any.
        num_classes: expected class count, or None to accept any.
        kind: accepted checkpoint kind(s), or None to accept any.

    Returns:
        ``(model in eval mode, meta)``.

    Raises:
        DataError: missing/corrupt file, or an architecture/class count/kind other than expected.
    """
    p = require_file(path, what="model file")
    obj = _read(p)
    if not isinstance(obj, dict):
        raise DataError(f"model file {p} holds a {type(obj).__name__}, not a state dict or distfer model")
    if obj.get("format") != FORMAT:
        if not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise DataError(f"model file {p} is neither a distfer model.pt nor a plain state dict")
        model = _from_torchvision(p, obj, arch)
        meta = model_meta(model, "source", {"from": "torchvision state dict"})
    else:
        meta = obj["meta"]
        _check(p, "architecture", meta["arch"], arch)
        _check(p, "number of classes", meta["num_classes"], num_classes)
        kinds = (kind,) if isinstance(kind, str) else kind
        if kinds is not None and meta["kind"] not in kinds:
            raise DataError(f"model file {p}: kind is {meta['kind']!r}, expected one of {list(kinds)}")
        model = FERModel(
            meta["arch"], meta["num_classes"], weight_norm=meta["weight_norm"],
            input_size=meta["input_size"], mean=meta["mean"], std=meta["std"],
        )
        _load_state(p, model, obj["state_dict"])
    if num_classes is not None and model.num_classes != num_classes:
        raise DataError(f"model file {p}: number of classes is {model.num_classes}, expected {num_classes}")
    return model.eval(), meta


def encoder_state(model: FERModel) -> dict[str, torch.Tensor]:
    """The encoder's state dict (keys without the ``encoder.`` prefix)."""
    return {k: v.detach().clone() for k, v in getattr(model, "module", model).encoder.state_dict().items()}
