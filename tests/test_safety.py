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
