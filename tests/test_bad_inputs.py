"""Bad-input battery: every stage, called through the CLI as a user would (issue 6, item 1).

Each case builds a small broken input, runs ``distfer <stage> ...`` in-process
(:func:`distfer.cli.main`) and checks: exit status 2, exactly one ``error: ...`` line on stderr
that names the offending file or value and says how to fix it, no traceback, and nothing
half-written in the output folder. A few cases also run the installed ``distfer`` script in a
subprocess, to check the real exit code and stderr of the program.

"Unwritable output directory": the tests run as root, so chmod is bypassed. We use places the
kernel refuses to anyone: ``/sys`` (an existing directory; root passes ``os.access`` but
``mkdir`` fails with EPERM), ``/proc/1`` (existing, ``os.access`` says no) and a path whose
parent is a regular file (ENOTDIR).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from distfer.cli import main
from distfer.fsutil import COMPLETE_MARKER

SFEW = ("Surprise", "Fear", "Disgust", "Happy", "Sad", "Angry", "Neutral")
SIZE = 16
DISTFER = Path(sys.executable).with_name("distfer")


# ---- tiny inputs -------------------------------------------------------------------------
def _png(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
    return path


def sfew_tree(root: Path, *, per_class: int = 2, val: bool = True) -> Path:
    """An SFEW 2.0 folder: Train/<Class>/*.png (and Val/<Class>/*.png)."""
    for split in ("Train", "Val") if val else ("Train",):
        for c, name in enumerate(SFEW):
            for i in range(per_class):
                _png(root / split / name / f"{name}_{i:03d}.png", seed=c * 100 + i)
    return root


def rafdb_tree(root: Path, lines: list[str], images: list[str]) -> Path:
    """A RAF-DB basic folder with the given label lines and aligned image stems."""
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for i, stem in enumerate(images):
        _png(root / "Image" / "aligned" / f"{stem}_aligned.jpg", seed=i)
    return root


def _rafdb_ok() -> tuple[list[str], list[str]]:
    names = [f"train_{i:05d}" for i in range(1, 8)] + [f"test_{i:04d}" for i in range(1, 8)]
    return [f"{n}.jpg {i % 7 + 1}" for i, n in enumerate(names)], names


def embeddings_dir(root: Path, *, n: int = 60, d: int = 8, logit_width: int = 7,
                   nan_rows: tuple[int, ...] = ()) -> Path:
    """Two Parquet embedding shards (index, features, logits, label)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[list(nan_rows), 0] = np.nan
    lg = rng.normal(size=(n, logit_width)).astype(np.float32)
    root.mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(n), 2)):
        pq.write_table(pa.table({
            "index": pa.array(rows.astype(np.int64)),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(x[rows].ravel()), d),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(lg[rows].ravel()), logit_width),
            "label": pa.array(rng.integers(0, 7, len(rows)).astype(np.int8)),
        }), root / f"part-{i:05d}.parquet")
    return root


def model_file(path: Path, *, arch: str = "small", num_classes: int = 7) -> Path:
    from distfer.models import FERModel, save_model

    return save_model(FERModel(arch, num_classes, input_size=SIZE), path, kind="source")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A prepared tiny labelled FaceStore (train + val)."""
    root = tmp_path_factory.mktemp("store")
    raw = sfew_tree(root / "raw", per_class=3)
    assert main(["prepare", "--format", "sfew", "--root", str(raw), "--out", str(root / "stores"),
                 "--name", "tiny", "--size", str(SIZE), "--workers", "1"]) == 0
    return root / "stores" / "tiny"


# ---- the cases ---------------------------------------------------------------------------
@dataclass
class Case:
    """argv for ``distfer``, the folder that must hold nothing afterwards, regexes the one error
    line must match (the offending file/value, and the fix)."""

    argv: list[str]
    out: Path | None
    expect: list[str]
    rc: int = 2
    warn: list[str] = field(default_factory=list)


def _prepare(fmt: str, root: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--format", fmt, "--root", str(root), "--out", str(out), "--size", str(SIZE),
            "--workers", "1", *extra]


def c_corrupt_image(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw")
    (raw / "Train" / "Happy" / "Happy_001.png").write_bytes(b"this is not a png at all")
    return Case(_prepare("sfew", raw, t / "out"), t / "out", [r"Happy_001\.png", "--skip-bad"])


def c_truncated_image(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw")
    f = raw / "Val" / "Sad" / "Sad_000.png"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    return Case(_prepare("sfew", raw, t / "out"), t / "out", [r"Sad_000\.png", "--skip-bad"])


def c_unknown_class_folder(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw")
    _png(raw / "Train" / "Confused" / "x.png", 5)
    return Case(_prepare("sfew", raw, t / "out"), t / "out", ["'Confused'", "--class-map"])


def c_empty_split(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", val=False)
    for name in SFEW:
        (raw / "Val" / name).mkdir(parents=True)
    return Case(_prepare("sfew", raw, t / "out"), t / "out", ["split 'val' is empty", r"Val", "add images"])


def c_label_names_missing_image(t: Path, store: Path) -> Case:
    lines, names = _rafdb_ok()
    raw = rafdb_tree(t / "raw", [*lines, "train_00099.jpg 3"], names)
    return Case(_prepare("rafdb", raw, t / "out"), t / "out",
                [r"train_00099_aligned\.jpg does not exist", "--skip-bad"])


def c_label_out_of_range(t: Path, store: Path) -> Case:
    lines, names = _rafdb_ok()
    lines[2] = lines[2].split()[0] + " 9"
    raw = rafdb_tree(t / "raw", lines, names)
    return Case(_prepare("rafdb", raw, t / "out"), t / "out",
                [r"list_patition_label\.txt:3", "label id 9 is out of range", r"expected one of \[1, 2"])


def c_size_too_small(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    argv = _prepare("sfew", raw, t / "out")
    argv[argv.index("--size") + 1] = "4"
    return Case(argv, t / "out", ["'size'", "is 4", r"in \[8, 4096\]"])


def c_missing_root(t: Path, store: Path) -> Case:
    return Case(_prepare("sfew", t / "nowhere", t / "out"), t / "out", [r"nowhere does not exist", "check the path"])


def c_output_is_a_file(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    (t / "out").write_text("a file, not a folder\n")
    return Case(_prepare("sfew", raw, t / "out"), None, [r"out is a file", "pass a directory path"])


def c_output_under_a_file(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    (t / "blocker").write_text("x\n")
    return Case(_prepare("sfew", raw, t / "blocker" / "out"), None, [r"blocker/out", "choose a writable location"])


def c_output_unwritable_sys(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    return Case(_prepare("sfew", raw, Path("/sys")), None, ["/sys", "writable"])


def c_output_unwritable_proc(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    return Case(_prepare("sfew", raw, Path("/proc/1")), None, ["/proc/1", "writable|permissions"])


def c_yaml_unknown_key(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    (t / "cfg.yaml").write_text(f"format: sfew\nroot: {raw}\nout: {t / 'out'}\nsise: 32\n")
    return Case(["prepare", "--config", str(t / "cfg.yaml")], t / "out",
                [r"cfg\.yaml", "unknown config key 'sise'", "Did you mean 'size'"])


def c_yaml_wrong_type(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    (t / "cfg.yaml").write_text(f"format: sfew\nroot: {raw}\nout: {t / 'out'}\nsize: big\n")
    return Case(["prepare", "--config", str(t / "cfg.yaml")], t / "out",
                [r"cfg\.yaml", "'size'", "expected an integer, got 'big'"])


def c_yaml_not_yaml(t: Path, store: Path) -> Case:
    (t / "cfg.yaml").write_text("clusters: [1, 2\n")
    return Case(["pseudo-label", "--config", str(t / "cfg.yaml"), "--features", str(t / "f"),
                 "--out", str(t / "out" / "pl.parquet")], t / "out", [r"cfg\.yaml is not valid YAML"])


def c_synth_image_size(t: Path, store: Path) -> Case:
    return Case(["synth", "--out", str(t / "out"), "--preset", "tiny", "--image-size", "8"], t / "out",
                ["'image_size'", "is 8", r"in \[16, 512\]"])


def _pseudo(emb: Path, out: Path, *extra: str) -> list[str]:
    return ["pseudo-label", "--features", str(emb), "--out", str(out / "pl.parquet"), "--niter", "2", *extra]


def c_k_greater_than_n(t: Path, store: Path) -> Case:
    return Case(_pseudo(embeddings_dir(t / "emb"), t / "out", "--clusters", "61"), t / "out",
                ["cannot make 61 clusters from 60 samples", "at most 60"])


def c_tau_out_of_range(t: Path, store: Path) -> Case:
    return Case(_pseudo(embeddings_dir(t / "emb"), t / "out", "--clusters", "7", "--select", "threshold:1.5"),
                t / "out", [r"tau=1\.5", r"\[0, 1\]"])


def c_tau_negative(t: Path, store: Path) -> Case:
    return Case(_pseudo(embeddings_dir(t / "emb"), t / "out", "--clusters", "7", "--select", "threshold:-0.1"),
                t / "out", [r"tau=-0\.1", r"\[0, 1\]"])


def c_nan_features(t: Path, store: Path) -> Case:
    return Case(_pseudo(embeddings_dir(t / "emb", nan_rows=(3, 40)), t / "out", "--clusters", "7"), t / "out",
                [r"2 row\(s\) hold NaN or inf", "first at row 3", "re-run the embedding stage"])


def ray_nan_features_sharded(t: Path, store: Path) -> Case:
    """Raised inside an IndexShard actor: the CLI prints the shard's message, not Ray's traceback."""
    return Case(_pseudo(embeddings_dir(t / "emb", nan_rows=(3, 40)), t / "out", "--clusters", "7",
                        "--shards", "2"), t / "out", [r"part-0000\d\.parquet", "NaN or inf", "re-run the embedding"])


def c_logits_wrong_width(t: Path, store: Path) -> Case:
    return Case(_pseudo(embeddings_dir(t / "emb", logit_width=5), t / "out", "--clusters", "7"), t / "out",
                [r"logits must have shape \[N, 7\], got \(60, 5\)", "7 canonical classes"])


def c_checkpoint_wrong_classes(t: Path, store: Path) -> Case:
    teacher = model_file(t / "m5" / "model.pt", num_classes=5)
    return Case(["embed", "--store", str(store), "--teacher", str(teacher), "--out", str(t / "out" / "emb")],
                t / "out", [r"m5/model\.pt", "number of classes is 5, expected 7"])


def c_checkpoint_wrong_arch(t: Path, store: Path) -> Case:
    init = model_file(t / "small" / "model.pt")
    return Case(["pretrain", "--store", str(store), "--init", str(init), "--arch", "resnet18_small",
                 "--out", str(t / "out" / "ssl"), "--batch-size", "4"], t / "out",
                [r"small/model\.pt", "architecture is 'small', expected 'resnet18_small'"])


def c_checkpoint_corrupt(t: Path, store: Path) -> Case:
    (t / "bad").mkdir()
    (t / "bad" / "model.pt").write_bytes(os.urandom(256))
    return Case(["evaluate", "--store", str(store), "--model", str(t / "bad" / "model.pt"),
                 "--out", str(t / "out" / "eval.json")], t / "out", [r"bad/model\.pt"])


def c_unknown_arch(t: Path, store: Path) -> Case:
    return Case(["train-source", "--store", str(store), "--out", str(t / "out" / "src"), "--arch", "resnet7"],
                t / "out", ["unknown architecture 'resnet7'", "choose one of .*small"])


def c_batch_larger_than_data(t: Path, store: Path) -> Case:
    return Case(["train-source", "--store", str(store), "--out", str(t / "out" / "src"), "--batch-size", "500"],
                t / "out", ["batch_size 500 is larger than the data", "use batch_size <= 21"])


def c_store_missing(t: Path, store: Path) -> Case:
    model = model_file(t / "m" / "model.pt")
    return Case(["evaluate", "--store", str(t / "nostore"), "--model", str(model),
                 "--out", str(t / "out" / "eval.json")], t / "out", ["nostore does not exist", "check the path"])


def c_pseudo_index_not_in_store(t: Path, store: Path) -> Case:
    init = model_file(t / "m" / "model.pt")
    n = 5
    pq.write_table(pa.table({
        "index": pa.array(np.arange(n, dtype=np.int64) + 10_000),
        "cluster": pa.array(np.zeros(n, np.int64)), "label": pa.array(np.zeros(n, np.int8)),
        "confidence": pa.array(np.ones(n, np.float32)),
        "soft": pa.FixedSizeListArray.from_arrays(pa.array(np.full(n * 7, 1 / 7, np.float32)), 7),
        "selected": pa.array(np.ones(n, bool)),
    }), t / "pl.parquet")
    return Case(["adapt", "--store", str(store), "--init", str(init), "--pseudo", str(t / "pl.parquet"),
                 "--out", str(t / "out" / "adapted"), "--batch-size", "2"], t / "out",
                [r"pl\.parquet", r"5 selected index value\(s\) \(e\.g\. 10000\) are not rows of split 'train'"])


def c_non_image_file_warns(t: Path, store: Path) -> Case:
    raw = sfew_tree(t / "raw", per_class=1)
    (raw / "Train" / "Happy" / "notes.txt").write_text("not an image\n")
    return Case(_prepare("sfew", raw, t / "out"), None, [], rc=0,
                warn=[r"warning: ignored 1 non-image file", r"notes\.txt"])


CASES: dict[str, Callable[[Path, Path], Case]] = {
    name[2:]: fn for name, fn in sorted(globals().items()) if name.startswith("c_") and callable(fn)
}


def _check_error(rc: int, err: str, case: Case) -> None:
    assert rc == case.rc, f"exit status {rc}, expected {case.rc}; stderr:\n{err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, f"expected exactly one 'error: ...' line, got:\n{err}"
    for pattern in case.expect:
        assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"


def _check_nothing_written(out: Path | None) -> None:
    if out is None or not out.exists():
        return
    assert out.is_dir()
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert left == [], f"the failed stage left files in {out}: {left}"


#: cases that run on Ray actors (started once by the session's ``ray_session`` fixture)
RAY_CASES: dict[str, Callable[[Path, Path], Case]] = {"nan_features_sharded": ray_nan_features_sharded}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path, store, capsys):
    _run_case(CASES[name](tmp_path, store), tmp_path, capsys)


@pytest.mark.parametrize("name", sorted(RAY_CASES))
def test_bad_input_on_ray(name, tmp_path, store, capsys, ray_session):
    _run_case(RAY_CASES[name](tmp_path, store), tmp_path, capsys)


def _run_case(case: Case, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    rc = main(case.argv)
    captured = capsys.readouterr()
    err = captured.err
    if case.rc == 0:
        assert rc == 0, err
        for pattern in case.warn:
            assert re.search(pattern, err), f"{pattern!r} not in {err!r}"
        stores = [p for p in (tmp_path / "out").iterdir()]
        assert len(stores) == 1 and (stores[0] / COMPLETE_MARKER).is_file()
        return
    _check_error(rc, err, case)
    _check_nothing_written(case.out)


def test_battery_is_large_enough():
    errors = [n for n in [*CASES, *RAY_CASES] if n != "non_image_file_warns"]
    assert len(errors) >= 15


def test_skip_bad_turns_the_corrupt_image_into_a_count(tmp_path, capsys):
    raw = sfew_tree(tmp_path / "raw")
    (raw / "Train" / "Happy" / "Happy_001.png").write_bytes(b"garbage")
    assert main(_prepare("sfew", raw, tmp_path / "out", "--skip-bad")) == 0
    assert "skipped 1 bad image" in capsys.readouterr().err
    from distfer.data.store import FaceStore

    s = FaceStore.open(tmp_path / "out" / "sfew")
    assert s.num_rows("train") == 13 and s.meta["skipped_bad"] == 1


@pytest.mark.parametrize("name", ["corrupt_image", "yaml_unknown_key", "nan_features"])
def test_bad_input_as_a_program(name, tmp_path, store):
    """The installed ``distfer`` script: real exit code, one error line, no traceback."""
    if not DISTFER.exists():
        pytest.skip(f"{DISTFER} is not installed (pip install -e .)")
    case = CASES[name](tmp_path, store)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([str(DISTFER), *case.argv], capture_output=True, text=True, timeout=120, env=env)
    _check_error(proc.returncode, proc.stderr, case)
    assert proc.stdout == ""
    _check_nothing_written(case.out)
