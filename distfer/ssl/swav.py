"""SwAV (Caron et al., 2020) on top of a :class:`~distfer.models.FERModel` encoder.

lightly supplies the loss (swapped prediction with Sinkhorn codes, optionally gathered
across DDP workers), the projection head and the prototypes; this module wires them to the
encoder. One ``forward`` call takes all multi-crop views, so DDP sees one forward per step.
"""

from __future__ import annotations

import torch
from lightly.loss import SwaVLoss
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes
from torch import nn

from distfer.config import PretrainConfig
from distfer.models.classifier import FERModel


class SwAVNet(nn.Module):
    """Encoder -> projection head -> L2 normalise -> prototype scores.

    The state dict's ``encoder.*`` keys are those of ``FERModel.encoder``.

    Args:
        backbone: the classifier whose ``encoder`` is trained (its head is unused here).
        hidden_dim, proj_dim: projection head sizes.
        prototypes: number of prototypes (3000-5000 for real data, ~100-300 for tiny data).
    """

    def __init__(self, backbone: FERModel, hidden_dim: int, proj_dim: int, prototypes: int) -> None:
        super().__init__()
        self.encoder = backbone.encoder  # the head is not part of SwAV (DDP needs every param used)
        self.register_buffer("mean", backbone.mean.clone(), persistent=False)
        self.register_buffer("std", backbone.std.clone(), persistent=False)
        self.projection = SwaVProjectionHead(backbone.feature_dim, hidden_dim, proj_dim)
        # prototypes are frozen by the training loop (grads dropped), not by requires_grad,
        # which DDP would not see after wrapping
        self.prototypes = SwaVPrototypes(proj_dim, prototypes, n_steps_frozen_prototypes=0)

    def forward(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Prototype scores ``[N, P]`` for each view ``[N, 3, S, S]`` (same-size views batched)."""
        out: list[torch.Tensor] = []
        i = 0
        while i < len(views):
            j = i
            while j < len(views) and views[j].shape[-1] == views[i].shape[-1]:
                j += 1
            x = torch.cat(views[i:j])
            z = self.projection(self.encoder((x - self.mean) / self.std))
            z = nn.functional.normalize(z, dim=1, p=2)
            out.extend(self.prototypes(z).chunk(j - i))
            i = j
        return out

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Project the prototype vectors back onto the unit sphere (before each step)."""
        self.prototypes.normalize()

    def prototype_parameters(self) -> list[nn.Parameter]:
        return list(self.prototypes.parameters())


def build_swav(cfg: PretrainConfig, backbone: FERModel, *, distributed: bool) -> tuple[SwAVNet, SwaVLoss]:
    """The SwAV network and its loss (Sinkhorn gathered across workers when ``distributed``)."""
    net = SwAVNet(backbone, cfg.hidden_dim, cfg.proj_dim, cfg.prototypes)
    loss = SwaVLoss(
        temperature=cfg.temperature,
        sinkhorn_iterations=cfg.sinkhorn_iterations,
        sinkhorn_epsilon=cfg.sinkhorn_epsilon,
        sinkhorn_gather_distributed=distributed,
    )
    return net, loss


def swav_loss(
    net: nn.Module, loss_fn: SwaVLoss, global_views: list[torch.Tensor], local_views: list[torch.Tensor]
) -> torch.Tensor:
    """Scalar SwAV loss of one multi-crop batch (``net`` may be DDP-wrapped)."""
    scores = net(global_views + local_views)
    return loss_fn(scores[: len(global_views)], scores[len(global_views):]).squeeze()
