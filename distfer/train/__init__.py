"""Training stages on Ray Train (source, SwAV pretraining, adaptation), embedding, evaluation.

Public API (one implementation behind the CLI and the pipeline)::

    from distfer.train import train_source, pretrain, adapt, embed, evaluate
"""

from __future__ import annotations

from typing import Any

__all__ = ["adapt", "embed", "evaluate", "pretrain", "train_source"]


def __getattr__(name: str) -> Any:  # lazy: importing distfer.train must not import Ray
    if name in ("train_source", "pretrain", "adapt", "evaluate"):
        from distfer.train import api

        return getattr(api, name)
    if name == "embed":
        from distfer.train.embed import embed

        return embed
    raise AttributeError(name)
