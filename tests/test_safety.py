"""Safe defaults that hold for the whole package (issue: reliability and security)."""

from __future__ import annotations

import ast
from pathlib import Path

import distfer

PACKAGE = Path(distfer.__file__).parent


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def test_no_eval_exec_shell_or_os_system():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree):
            name = _name(call.func)
            if name in {"eval", "exec", "os.system", "os.popen", "builtins.eval", "builtins.exec"}:
                offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno} {name}()")
            for kw in call.keywords:
                if kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno} shell=True")
    assert not offenders, "unsafe calls in the package:\n" + "\n".join(offenders)


def test_torch_load_is_always_weights_only():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree):
            if _name(call.func) in {"torch.load"}:
                ok = any(
                    kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
                    for kw in call.keywords
                )
                if not ok:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno}")
    assert not offenders, "torch.load without weights_only=True:\n" + "\n".join(offenders)


def test_no_pickle_loads_of_user_files():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree):
            if _name(call.func) in {"pickle.load", "pickle.loads", "np.load", "numpy.load"}:
                if _name(call.func).endswith("np.load") or _name(call.func).endswith("numpy.load"):
                    bad = any(
                        kw.arg == "allow_pickle" and isinstance(kw.value, ast.Constant) and kw.value.value is True
                        for kw in call.keywords
                    )
                    if not bad:
                        continue
                offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno} {_name(call.func)}")
    assert not offenders, "pickle loading in the package:\n" + "\n".join(offenders)


# ---- safe network defaults and checked paths (issue 6, item 4) -------------------------------
ROOT = PACKAGE.parent


def test_no_source_file_binds_all_interfaces():
    offenders = []
    for folder in ("distfer", "experiments", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if "0.0.0.0" in line or "'::'" in line or '"::"' in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "binding to all interfaces:\n" + "\n".join(offenders)


def test_mlflow_ui_binds_localhost_unless_asked(tmp_path):
    from distfer.cli import build_parser
    from distfer.tracking.ui import ui_command

    args = build_parser().parse_args(["ui", "--output", str(tmp_path)])
    assert args.host == "127.0.0.1"
    (tmp_path / "mlflow.db").write_bytes(b"")
    cmd = ui_command(tmp_path)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    cmd = ui_command(tmp_path, host="10.0.0.5")  # the user's explicit choice is kept
    assert cmd[cmd.index("--host") + 1] == "10.0.0.5"


def _cluster():
    import yaml

    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _rules(obj):
    """Every ``IpPermissions`` rule anywhere in the cluster config."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "IpPermissions":
                yield from v
            else:
                yield from _rules(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _rules(v)


def _ray_default_world_rules() -> list:
    """The world-facing rules of the security group Ray's AWS launcher creates, read from the
    installed Ray's source (importing that module needs boto3, which distfer does not need)."""
    import importlib.util

    src = Path(importlib.util.find_spec("ray.autoscaler").origin).parent / "_private" / "aws" / "config.py"
    text = src.read_text()
    tree = ast.parse(text)
    rules = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and "0.0.0.0/0" in (ast.get_source_segment(text, fn) or ""):
            ret = [n for n in ast.walk(fn) if isinstance(n, ast.Return)]
            assert fn.name == "_create_default_ssh_inbound_rules" and len(ret) == 1, fn.name
            rules += ast.literal_eval(ret[0].value)
    assert rules, f"no world-open default rule found in {src}; re-check this test"
    return rules


def test_cluster_yaml_opens_no_port_to_the_world_but_ssh():
    """cluster.yaml adds no security-group rule; Ray's default group (checked too) opens only
    SSH (22) to 0.0.0.0/0 and everything else within the group. The Ray dashboard binds
    0.0.0.0 on the head so that trials on worker nodes reach the state API, but with that group
    it is reachable from inside the cluster only (users reach it through `ray dashboard`,
    an SSH tunnel); the MLflow UI binds 127.0.0.1 (reach it with `ray attach -p 5000`)."""
    cfg = _cluster()
    world = {"0.0.0.0/0", "::/0"}
    for rule in [*_rules(cfg), *_ray_default_world_rules()]:
        cidrs = {r.get("CidrIp") for r in rule.get("IpRanges", [])} | {r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])}
        if cidrs & world:
            assert (rule.get("FromPort"), rule.get("ToPort")) == (22, 22), f"world-open rule: {rule}"
    for t in cfg["available_node_types"].values():
        assert "SecurityGroupIds" not in t["node_config"], "a custom security group escapes this check"
    commands = [c for key in ("head_start_ray_commands", "worker_start_ray_commands", "setup_commands",
                              "head_setup_commands") for c in cfg.get(key) or []]
    for c in commands:
        if "mlflow ui" in c or "mlflow server" in c:
            assert "--host 127.0.0.1" in c, c


def test_input_paths_are_resolved_before_use(tmp_path, monkeypatch):
    """A relative or ~ path is made absolute and checked before any work, and the error names
    the absolute path the user can look for."""
    import pytest

    from distfer.data.store import FaceStore
    from distfer.errors import DataError
    from distfer.fsutil import ensure_output_dir, require_dir, require_file
    from distfer.models import load_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataError, match=str(tmp_path / "home" / "x" / "model.pt")):
        load_model("~/x/model.pt")
    with pytest.raises(DataError, match=str(tmp_path / "rel" / "store")):
        FaceStore.open("rel/store")
    with pytest.raises(DataError, match=str(tmp_path / "root")):
        require_dir("root")
    (tmp_path / "f").write_text("x")
    assert require_file("f") == tmp_path / "f"
    assert ensure_output_dir("~/out") == tmp_path / "home" / "out"
