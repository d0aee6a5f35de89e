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
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
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


# ---- training: Ray Train workers, source model, SwAV pretraining, embedding, adaptation ----
# (owner: training; modules distfer/models, distfer/ssl, distfer/train)
@dataclasses.dataclass(frozen=True)
class TrainerConfig(Config):
    """Ray Train resources and storage; none of these change a run's results.

    ``num_workers: 0`` runs the loop in the calling process (no Ray Train controller or worker
    actors to start), for one-process CPU runs such as a laptop sweep's trials; checkpoints
    still go to ``storage_path`` every epoch and a re-run resumes from them.
    """

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset(
        {"num_workers", "use_gpu", "cpus_per_worker", "storage_path", "max_failures",
         "num_to_keep", "torch_threads"}
    )

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    storage_path: str = "outputs/ray_train"  # made absolute at use; s3:// or NFS on a cluster
    max_failures: int = 0
    num_to_keep: int = 2
    torch_threads: int | None = None  # default: max(1, int(cpus_per_worker))

    def validate(self) -> None:
        check_range(self, "num_workers", low=0)
        check_range(self, "cpus_per_worker", low=0, low_open=True)
        if self.num_workers == 0 and "://" in self.storage_path:
            raise ConfigError(f"config key 'num_workers' is 0 (in-process) but 'storage_path' is "
                              f"{self.storage_path!r}: an in-process run keeps checkpoints on a local path only")
        check_range(self, "max_failures", low=-1)
        check_range(self, "num_to_keep", low=1)
        check_range(self, "torch_threads", low=1)


@dataclasses.dataclass(frozen=True)
class AugmentConfig(Config):
    """Supervised batch augmentation (tensor ops on whole batches)."""

    hflip: float = 0.5  # probability of a horizontal flip
    rotate: float = 10.0  # max rotation, degrees
    translate: float = 0.1  # max shift, fraction of the image size
    scale_min: float = 0.9
    scale_max: float = 1.1
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3

    def validate(self) -> None:
        check_range(self, "hflip", low=0, high=1)
        check_range(self, "rotate", low=0, high=180)
        check_range(self, "translate", low=0, high=0.5)
        check_range(self, "scale_min", low=0, low_open=True)
        check_range(self, "scale_max", low=self.scale_min)
        for k in ("brightness", "contrast", "saturation"):
            check_range(self, k, low=0, high=1)


def _check_supervised_optimisation(cfg: Config) -> None:
    """Range checks shared by the supervised stages (train-source, adapt)."""
    check_range(cfg, "epochs", low=1)
    check_range(cfg, "batch_size", low=1)
    check_range(cfg, "lr", low=0, low_open=True)
    check_range(cfg, "momentum", low=0, high=1, high_open=True)
    check_range(cfg, "weight_decay", low=0)
    check_range(cfg, "gamma", low=0, high=1, low_open=True)


@dataclasses.dataclass(frozen=True)
class TrainSourceConfig(Config):
    """``distfer train-source``: supervised source model on a labelled FaceStore."""

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"out", "run_name", "trainer"})

    store: str
    out: str  # output folder; the model is written to <out>/model.pt
    arch: str = "small"
    split: str = "train"
    val_split: str | None = "val"  # evaluated each epoch when the store has it
    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "exponential", "constant"] = "cosine"
    gamma: float = 0.9  # per-epoch decay of the exponential schedule
    label_smoothing: float = 0.1
    weight_norm: bool = False
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    seed: int = 0
    run_name: str | None = None
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)

    def validate(self) -> None:
        _check_supervised_optimisation(self)
        check_range(self, "label_smoothing", low=0, high=1, high_open=True)


@dataclasses.dataclass(frozen=True)
class PretrainConfig(Config):
    """``distfer pretrain``: SwAV on the (unlabelled) target store with multi-crop."""

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"out", "run_name", "trainer"})

    store: str
    out: str  # output folder; the encoder is written to <out>/model.pt (kind "ssl")
    arch: str = "small"
    init: str | None = None  # optional model.pt to start the encoder from (e.g. the source model)
    split: str = "train"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-6
    schedule: Literal["cosine", "constant"] = "cosine"
    prototypes: int = 300  # 5000 in the paper's setting
    hidden_dim: int = 512
    proj_dim: int = 128
    temperature: float = 0.1
    sinkhorn_iterations: int = 3
    sinkhorn_epsilon: float = 0.05
    freeze_prototypes_steps: int = 20  # prototypes get no update for the first steps
    global_crops: int = 2
    local_crops: int = 4
    global_size: int | None = None  # default: the store's image size
    local_size: int | None = None  # default: half the global size
    global_scale: tuple[float, ...] = (0.35, 1.0)  # (low, high) area fraction
    local_scale: tuple[float, ...] = (0.1, 0.35)
    color_strength: float = 0.5
    seed: int = 0
    run_name: str | None = None
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)

    def validate(self) -> None:
        check_range(self, "epochs", low=1)
        check_range(self, "batch_size", low=2)
        check_range(self, "lr", low=0, low_open=True)
        check_range(self, "prototypes", low=2)
        check_range(self, "temperature", low=0, low_open=True)
        check_range(self, "sinkhorn_iterations", low=1)
        check_range(self, "sinkhorn_epsilon", low=0, low_open=True)
        check_range(self, "freeze_prototypes_steps", low=0)
        check_range(self, "global_crops", low=2)
        check_range(self, "local_crops", low=0)
        check_range(self, "global_size", low=8)
        check_range(self, "local_size", low=4)
        check_range(self, "color_strength", low=0, high=1)
        for key in ("global_scale", "local_scale"):
            v = getattr(self, key)
            if len(v) != 2 or not 0 < v[0] <= v[1] <= 1:
                raise ConfigError(f"config key {key!r} of PretrainConfig is {v!r}; "
                                  "it must be (low, high) with 0 < low <= high <= 1")


@dataclasses.dataclass(frozen=True)
class EmbedConfig(Config):
    """``distfer embed``: teacher logits/features (+ SSL features) per split into Parquet shards."""

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset(
        {"out", "num_actors", "cpus_per_actor", "use_gpu", "batch_size"}
    )

    store: str
    teacher: str  # model.pt (distfer checkpoint or plain torchvision ResNet state dict)
    out: str  # output folder: <out>/<split>/part-*.parquet + <out>/<split>/embed_meta.json
    encoder: str | None = None  # SSL model.pt: adds the ssl_features column
    splits: tuple[str, ...] = ("train", "val")
    batch_size: int = 256
    num_actors: int = 2
    cpus_per_actor: float = 0.5
    use_gpu: bool = False
    min_shards: int = 2

    def validate(self) -> None:
        check_range(self, "batch_size", low=1)
        check_range(self, "num_actors", low=1)
        check_range(self, "cpus_per_actor", low=0, low_open=True)
        check_range(self, "min_shards", low=1)
        if not self.splits:
            raise ConfigError("config key 'splits' of EmbedConfig is empty; name at least one split")


@dataclasses.dataclass(frozen=True)
class AdaptConfig(Config):
    """``distfer adapt``: fine-tune an encoder + fresh head on the selected pseudo-labels."""

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"out", "run_name", "trainer"})

    store: str
    init: str  # model.pt whose encoder starts the adaptation (SSL encoder or source model)
    pseudo: str  # Parquet: index, cluster, label, confidence, soft[7], selected
    out: str  # output folder; the adapted model is written to <out>/model.pt
    split: str = "train"  # the store split the pseudo-labels index into
    val_split: str | None = "val"
    keep_head: bool = False  # start from the init checkpoint's head instead of a fresh one
    targets: Literal["hard", "soft"] = "hard"
    mixup_alpha: float = 0.2  # Beta(alpha, alpha); 0 disables mixup
    mixaug: float = 0.0  # weight of the extra loss of the mixed batch against its dominant labels
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "exponential", "constant"] = "cosine"
    gamma: float = 0.9
    label_smoothing: float = 0.0
    weight_norm: bool = False
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    seed: int = 0
    run_name: str | None = None
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)

    def validate(self) -> None:
        _check_supervised_optimisation(self)
        check_range(self, "mixup_alpha", low=0)
        check_range(self, "mixaug", low=0)
        check_range(self, "label_smoothing", low=0, high=1, high_open=True)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(Config):
    """``distfer evaluate``: accuracy, macro-F1, per-class accuracy, confusion matrix."""

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"out", "batch_size"})

    store: str
    model: str
    split: str = "val"
    out: str | None = None  # JSON file; default <model folder>/eval_<split>.json
    batch_size: int = 256

    def validate(self) -> None:
        check_range(self, "batch_size", low=1)


# ---- data: dataset readers and FaceStore (distfer.data) ----------------------------------
#: on-disk dataset formats that ``distfer prepare`` reads (one reader each in distfer.data.formats)
DATASET_FORMATS: tuple[str, ...] = ("sfew", "rafdb", "fer2013", "affectnet", "expw", "afe", "imagefolder")


@dataclasses.dataclass(frozen=True)
class PrepareConfig(Config):
    """Decode, crop and resize a dataset once into a FaceStore (``distfer prepare``).

    Attributes:
        format: the dataset's on-disk layout (see README "Using real datasets").
        root: the dataset's root folder.
        out: the folder that holds stores; the store is written to ``out/name``.
        name: the store's name (default: the format name).
        size: output images are ``size x size`` RGB (at least 8).
        skip_bad: skip corrupt images and label lines naming missing images (and report how
            many) instead of failing.
        workers: decoding processes (default: all CPU cores); does not change the result.
        class_map: folder name -> class name (any spelling) or ``ignore``, for the folder-based
            formats (``imagefolder``, ``sfew``); folders not in it must be named after the 7
            classes (any common spelling).
        image_encoding: ``raw`` (uint8 HxWx3 bytes, fastest to read) or ``png`` (smaller).
        val_fraction: the share of images put into ``val`` for formats without an official
            split (ExpW), chosen per image file by a seeded hash.
        split_seed: seed of that split.
    """

    format: Literal["sfew", "rafdb", "fer2013", "affectnet", "expw", "afe", "imagefolder"]
    root: str
    out: str
    name: str | None = None
    size: int = 112
    skip_bad: bool = False
    workers: int | None = None
    class_map: dict[str, str] = dataclasses.field(default_factory=dict)
    image_encoding: Literal["raw", "png"] = "raw"
    val_fraction: float = 0.2
    split_seed: int = 0

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"root", "out", "name", "workers"})

    def validate(self) -> None:
        check_range(self, "size", low=8, high=4096)
        check_range(self, "workers", low=1)
        check_range(self, "val_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"config key 'name' is {self.name!r}; use a plain folder name such as 'sfew'")
        from distfer.classes import is_class_name

        for folder, cls in self.class_map.items():
            if cls.lower() != "ignore" and not is_class_name(cls):
                raise ConfigError(
                    f"config key 'class_map.{folder}' is {cls!r}; use one of Surprise, Fear, Disgust, "
                    "Happiness, Sadness, Anger, Neutral (any common spelling) or 'ignore'"
                )


# ---- pseudo-labelling: k-means, cluster purity, selection (distfer.clustering, distfer.pseudo) ----
def parse_select_spec(spec: str) -> tuple[str, float]:
    """Parse a selection spec ``fraction:RHO`` (0 < RHO <= 1) or ``threshold:TAU`` (0 <= TAU <= 1).

    Returns:
        ``(kind, value)`` with kind ``"fraction"`` or ``"threshold"``.

    Raises:
        ConfigError: unknown kind, unparsable number, or value out of range.
    """
    kind, sep, raw = str(spec).partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ("fraction", "threshold"):
        raise ConfigError(
            f"selection spec {spec!r} is not understood; write 'fraction:RHO' (keep the RHO most "
            "confident share of each class, 0 < RHO <= 1) or 'threshold:TAU' (keep confidence >= TAU)"
        )
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"selection spec {spec!r}: {raw!r} is not a number") from None
    if kind == "fraction" and not 0.0 < value <= 1.0:
        raise ConfigError(f"selection spec {spec!r}: rho={value} must be in (0, 1]")
    if kind == "threshold" and not 0.0 <= value <= 1.0:
        raise ConfigError(f"selection spec {spec!r}: tau={value} must be in [0, 1]")
    return kind, value


@dataclasses.dataclass(frozen=True)
class KMeansConfig(Config):
    """Seeded Lloyd k-means (faiss assignment; random distinct points as initial centroids)."""

    clusters: int = 1000
    niter: int = 20
    seed: int = 0
    spherical: bool = False
    init: Literal["random", "kmeans++"] = "random"
    device: Literal["auto", "cpu", "gpu"] = "auto"

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"device"})

    def validate(self) -> None:
        check_range(self, "clusters", low=1)
        check_range(self, "niter", low=1)
        check_range(self, "seed", low=0)


@dataclasses.dataclass(frozen=True)
class PseudoLabelConfig(Config):
    """Cluster-level pseudo-labelling (CluP) and its baselines, plus per-class selection.

    ``mode``: ``purity`` (cluster majority label, confidence = purity), ``soft-purity`` (the same,
    soft target = in-cluster class histogram), ``confidence`` (softmax max per sample) or
    ``centroid`` (SHOT nearest class centroid, ``centroid_cycles`` refinements).
    ``select``: ``fraction:RHO`` or ``threshold:TAU``. ``column``: which embedding column is
    clustered (``features`` = teacher, ``ssl_features``, or ``concat`` of both L2-normalised).
    ``shards``: 0 clusters in-process; S >= 1 uses a ShardedIndex of S Ray actors.
    """

    mode: Literal["purity", "soft-purity", "centroid", "confidence"] = "purity"
    select: str = "fraction:0.1"
    clusters: int = 1000
    niter: int = 20
    seed: int = 0
    spherical: bool = False
    init: Literal["random", "kmeans++"] = "random"
    column: Literal["features", "ssl_features", "concat"] = "features"
    feature_prep: Literal["append_one", "l2", "none"] = "append_one"
    drop_outliers: bool = False
    min_per_class: int = 0
    iter_clusters: int = 1
    centroid_cycles: int = 0
    shards: int = 0
    device: Literal["auto", "cpu", "gpu"] = "auto"

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"device"})

    def validate(self) -> None:
        parse_select_spec(self.select)
        check_range(self, "niter", low=1)
        check_range(self, "seed", low=0)
        check_range(self, "min_per_class", low=0)
        check_range(self, "iter_clusters", low=1)
        check_range(self, "centroid_cycles", low=0)
        check_range(self, "shards", low=0)
        if self.mode in ("purity", "soft-purity"):
            from distfer.classes import NUM_CLASSES

            if self.clusters < NUM_CLASSES:
                raise ConfigError(
                    f"config key 'clusters' of PseudoLabelConfig is {self.clusters}; cluster purity "
                    f"needs at least as many clusters as classes ({NUM_CLASSES})"
                )
        elif self.iter_clusters != 1:
            raise ConfigError(
                f"config key 'iter_clusters' is {self.iter_clusters}, but mode {self.mode!r} does not "
                "cluster; use mode 'purity' or 'soft-purity', or iter_clusters: 1"
            )

    @property
    def select_kind(self) -> str:
        return parse_select_spec(self.select)[0]

    @property
    def select_value(self) -> float:
        return parse_select_spec(self.select)[1]

    def kmeans(self) -> KMeansConfig:
        """The k-means part of this config."""
        return KMeansConfig(
            clusters=self.clusters, niter=self.niter, seed=self.seed,
            spherical=self.spherical, init=self.init, device=self.device,
        )


# ---- synthetic benchmark (distfer synth) ----------------------------------------------------
#: image counts (source train, source test, target train, target val) of each synth preset
SYNTH_PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (70, 35, 70, 35),
    "quick": (4000, 1000, 4000, 600),
    "full": (12000, 3000, 12000, 1500),
}


@dataclasses.dataclass(frozen=True)
class SynthConfig(Config):
    """`distfer synth`: the embedded synthetic RAF-DB (source) / SFEW 2.0 (target) benchmark.

    The count fields override the preset's counts when given; ``workers`` (processes) and
    ``out``/``overwrite`` do not change the images, so they are left out of the fingerprint.
    """

    out: str
    preset: Literal["tiny", "quick", "full"] = "quick"
    seed: int = 0
    image_size: int = 64
    source_train: int | None = None
    source_test: int | None = None
    target_train: int | None = None
    target_val: int | None = None
    workers: int = 2
    overwrite: bool = False

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"out", "workers", "overwrite"})

    def validate(self) -> None:
        check_range(self, "image_size", low=16, high=512)
        check_range(self, "workers", low=1, high=256)
        check_range(self, "seed", low=0)
        for key in ("source_train", "source_test", "target_train", "target_val"):
            check_range(self, key, low=7)

    def counts(self) -> dict[str, int]:
        """Images per split: keys source_train, source_test, target_train, target_val."""
        keys = ("source_train", "source_test", "target_train", "target_val")
        preset = dict(zip(keys, SYNTH_PRESETS[self.preset]))
        return {k: preset[k] if getattr(self, k) is None else getattr(self, k) for k in keys}


# ---- experiment system: pipeline, Ray Tune sweep, MLflow (distfer.pipeline, distfer.tune, distfer.tracking) ----
#: label-free selection criteria the sweep can maximise (see distfer.tune.criteria), plus "oracle"
SWEEP_OBJECTIVES: tuple[str, ...] = ("oracle", "snd", "neg_entropy", "im")
#: the baselines an experiment can run next to CluP
BASELINES: tuple[str, ...] = ("source_only", "confidence", "centroid", "oracle")


@dataclasses.dataclass(frozen=True)
class TrackingConfig(Config):
    """MLflow: where runs go. ``tracking_uri`` None = ``sqlite:////ABS/<output>/mlflow.db``."""

    tracking_uri: str | None = None
    experiment: str | None = None  # default "<source>-><target>", e.g. "rafdb->sfew"
    log_models: bool = True  # upload each trial's model.pt as an artifact

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"tracking_uri", "experiment", "log_models"})


@dataclasses.dataclass(frozen=True)
class SweepConfig(Config):
    """The Ray Tune sweep over CluP settings.

    ``clusters`` x ``select_values`` (interpreted as ``select_kind``: thresholds tau or per-class
    fractions rho) is the grid; ``space`` adds any other key, dotted as ``pseudo.<key>`` or
    ``adapt.<key>`` (e.g. ``pseudo.column: [features, ssl_features]``, ``adapt.mixup_alpha``).
    ``search: optuna`` samples ``num_samples`` trials with TPE from the same choices instead of
    running the full grid. ``scheduler: asha`` stops poor trials early on adaptation epochs (it
    judges Val accuracy, so it needs ``objective: oracle``). ``objective``: ``oracle`` ranks
    trials by target-Val accuracy (uses target labels, clearly a ceiling); ``snd``,
    ``neg_entropy``, ``im`` need no target labels.
    """

    clusters: tuple[int, ...] = (100, 300)
    select_kind: Literal["fraction", "threshold"] = "fraction"
    select_values: tuple[float, ...] = (0.3, 0.6)
    space: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    search: Literal["grid", "optuna"] = "grid"
    num_samples: int | None = None  # grid: repeats of the grid (default 1); optuna: trials (default 8)
    scheduler: Literal["fifo", "asha"] = "fifo"
    grace_period: int = 1  # ASHA: epochs before a trial may be stopped
    reduction_factor: int = 2
    objective: Literal["oracle", "snd", "neg_entropy", "im"] = "oracle"
    criterion: Literal["snd", "neg_entropy", "im"] = "snd"  # the label-free criterion reported
    criterion_samples: int | None = 2000  # target Train images the criteria see (seeded subset; SND is O(N^2)); None = all
    max_concurrent: int = 1
    trial_cpus: float = 0.1  # the trial's own driver process; workers get their own CPUs
    seed: int = 0

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset({"max_concurrent", "trial_cpus"})

    def validate(self) -> None:
        check_range(self, "criterion_samples", low=2)
        if not self.clusters or not self.select_values:
            raise ConfigError("config keys 'clusters' and 'select_values' of SweepConfig need at least one value")
        for i, k in enumerate(self.clusters):
            if k < 7:
                raise ConfigError(f"config key 'clusters[{i}]' is {k}; cluster purity needs K >= 7 (the classes)")
        for i, v in enumerate(self.select_values):
            if not (0 < v <= 1 if self.select_kind == "fraction" else 0 <= v <= 1):
                want = "(0, 1]" if self.select_kind == "fraction" else "[0, 1]"
                raise ConfigError(f"config key 'select_values[{i}]' is {v}; a {self.select_kind} must be in {want}")
        for key, values in self.space.items():
            section, _, name = key.partition(".")
            if section not in ("pseudo", "adapt") or not name:
                raise ConfigError(f"config key 'space.{key}': name a key as 'pseudo.<key>' or 'adapt.<key>'")
            target = PseudoLabelConfig if section == "pseudo" else AdaptConfig
            if name not in target.field_names():
                hint = difflib.get_close_matches(name, target.field_names(), n=1)
                extra = f" (did you mean {section}.{hint[0]}?)" if hint else ""
                raise ConfigError(f"config key 'space.{key}': {target.__name__} has no key {name!r}{extra}")
            if name in ("clusters", "select"):
                raise ConfigError(f"config key 'space.{key}': set it with 'clusters'/'select_values' instead")
            if not values:
                raise ConfigError(f"config key 'space.{key}' needs at least one value")
        check_range(self, "num_samples", low=1)
        check_range(self, "grace_period", low=1)
        check_range(self, "reduction_factor", low=2)
        check_range(self, "max_concurrent", low=1)
        check_range(self, "trial_cpus", low=0, low_open=True)
        if self.scheduler == "asha" and self.objective != "oracle":
            raise ConfigError(
                f"config key 'scheduler' is 'asha' but 'objective' is {self.objective!r}: ASHA stops "
                "trials on per-epoch Val accuracy, so it needs objective 'oracle' (or use scheduler 'fifo')"
            )

    def grid_size(self) -> int:
        n = len(self.clusters) * len(self.select_values)
        for values in self.space.values():
            n *= len(values)
        return n


def _check_stage_overrides(section: str, cls: type[Config], values: Mapping[str, Any], fixed: Mapping[str, Any]) -> None:
    """Validate ``values`` as keys of ``cls`` (with its path fields filled by ``fixed``)."""
    for k in values:
        if k in fixed:
            raise ConfigError(f"config key '{section}.{k}' is set by the pipeline; remove it")
    cls.from_dict({**fixed, **values}, prefix=f"{section}.")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(Config):
    """One experiment: prepare -> train-source -> pretrain -> embed -> sweep (+ baselines).

    Stage sections (``prepare``, ``train_source``, ``pretrain``, ``embed``, ``pseudo``,
    ``adapt``) hold overrides of that stage's config; the pipeline fills in the paths. They are
    validated here, so a typo fails before anything runs. ``trainer`` overrides the Ray Train
    resources of every training stage. ``source_root``/``target_root`` None = the embedded
    synthetic benchmark (``synth`` overrides its SynthConfig), generated on first use.
    """

    output_dir: str = "outputs/tune_sfew"
    name: str = "sweep"
    preset: str = "quick"
    source_format: Literal["sfew", "rafdb", "fer2013", "affectnet", "expw", "afe", "imagefolder"] = "rafdb"
    source_root: str | None = None
    target_format: Literal["sfew", "rafdb", "fer2013", "affectnet", "expw", "afe", "imagefolder"] = "sfew"
    target_root: str | None = None
    source_checkpoint: str | None = None
    image_size: int = 32
    synth: dict[str, Any] = dataclasses.field(default_factory=dict)
    prepare: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_source: dict[str, Any] = dataclasses.field(default_factory=dict)
    pretrain: dict[str, Any] = dataclasses.field(default_factory=dict)
    embed: dict[str, Any] = dataclasses.field(default_factory=dict)
    pseudo: dict[str, Any] = dataclasses.field(default_factory=dict)
    adapt: dict[str, Any] = dataclasses.field(default_factory=dict)
    trainer: dict[str, Any] = dataclasses.field(default_factory=dict)
    baselines: tuple[str, ...] = BASELINES
    baseline_select: str = "fraction:0.5"  # selection of the confidence/centroid baselines
    adapt_init: Literal["ssl", "source"] = "ssl"  # adaptation starts from the SSL encoder or the teacher
    pretrain_init: Literal["random", "source"] = "random"  # SwAV starts from scratch or the teacher's encoder
    index_shards: int = 2  # IndexShard actors of the sweep's ShardedIndex
    index_cpus: float = 0.25  # CPUs per IndexShard actor
    index_resources: dict[str, float] = dataclasses.field(default_factory=dict)  # e.g. {index_shard: 1}
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)
    ray_address: str | None = None
    seed: int = 0

    _fingerprint_exclude: ClassVar[frozenset[str]] = frozenset(
        {"output_dir", "ray_address", "tracking", "index_cpus", "index_resources"})

    def validate(self) -> None:
        check_range(self, "image_size", low=8, high=4096)
        check_range(self, "index_shards", low=1)
        check_range(self, "index_cpus", low=0, low_open=True)
        if (self.source_root is None) != (self.target_root is None):
            raise ConfigError("give both 'source_root' and 'target_root' (real data) or neither (the embedded benchmark)")
        for b in self.baselines:
            if b not in BASELINES:
                raise ConfigError(f"config key 'baselines': {b!r} is not one of {', '.join(BASELINES)}")
        parse_select_spec(self.baseline_select)
        _check_stage_overrides("synth", SynthConfig, self.synth, {"out": "-"})
        _check_stage_overrides("prepare", PrepareConfig, self.prepare,
                               {"format": self.source_format, "root": "-", "out": "-", "size": self.image_size})
        _check_stage_overrides("trainer", TrainerConfig, self.trainer, {})
        _check_stage_overrides("train_source", TrainSourceConfig, self.train_source, {"store": "-", "out": "-"})
        _check_stage_overrides("pretrain", PretrainConfig, self.pretrain, {"store": "-", "out": "-"})
        _check_stage_overrides("embed", EmbedConfig, self.embed, {"store": "-", "teacher": "-", "out": "-"})
        _check_stage_overrides("pseudo", PseudoLabelConfig, self.pseudo, {})
        _check_stage_overrides("adapt", AdaptConfig, self.adapt,
                               {"store": "-", "init": "-", "pseudo": "-", "out": "-"})
