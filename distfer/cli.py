"""`distfer <stage> ...`: parse the arguments, build the stage's config, call the stage.

No logic lives here. Each subcommand is registered by an ``_add_<stage>`` function listed in
``_SUBCOMMANDS``; it defines the arguments and sets ``func`` to a handler that builds the
stage's frozen config (``--config FILE.yaml`` first, command-line flags on top) and calls the
stage's Python API. Stage modules are imported inside the handlers so ``distfer --help`` stays
fast.

User errors (:class:`~distfer.errors.DistferError`) are printed as one line, ``error: ...``,
with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from distfer.errors import DistferError


def _overrides(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    """The flags among ``keys`` that the user actually gave (argparse default ``None``)."""
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def build_config(cls: Any, args: argparse.Namespace, keys: Sequence[str], **fixed: Any) -> Any:
    """``cls`` from ``--config`` (if given) with the given flags and ``fixed`` values on top."""
    values = {**_overrides(args, keys), **fixed}
    if getattr(args, "config", None):
        return cls.from_yaml(args.config, **values)
    return cls.from_dict(values)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _add_config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="YAML config; flags given here override it")


# ---- subcommands (one _add_<stage> function each, in pipeline order) -------------------


_SUBCOMMANDS: list[Callable[[Any], None]] = []


def build_parser() -> argparse.ArgumentParser:
    from distfer import __version__

    parser = argparse.ArgumentParser(
        prog="distfer",
        description="Source-free domain adaptation for facial expression recognition (CluP) on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"distfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<stage>", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except DistferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
