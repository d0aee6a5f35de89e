"""Training stages on Ray Train (source, SwAV pretraining, adaptation), embedding, evaluation.

Public API (one implementation behind the CLI and the pipeline)::

    from distfer.train import train_source, pretrain, adapt, embed, evaluate

Importing this package does not import Ray (the stages import it when they run).
"""

from distfer.train.api import TrainResult, adapt, evaluate, pretrain, train_source
from distfer.train.embedding import EmbedResult, embed

__all__ = ["EmbedResult", "TrainResult", "adapt", "embed", "evaluate", "pretrain", "train_source"]
