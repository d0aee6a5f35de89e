"""SwAV wiring: the loss falls over a few steps on tiny data; prototype freezing; key layout."""

from __future__ import annotations

import torch

from distfer.config import PretrainConfig
from distfer.data.augment import multi_crop
from distfer.models import FERModel
from distfer.ssl import build_swav, swav_loss


def test_swav_loss_falls_on_tiny_data():
    torch.manual_seed(0)
    cfg = PretrainConfig(store="s", out="o", prototypes=16, hidden_dim=64, proj_dim=32, local_crops=2)
    net, loss_fn = build_swav(cfg, FERModel("small", input_size=16), distributed=False)
    x = torch.rand(16, 3, 16, 16)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    fixed = multi_crop(x, cfg, gen)  # fixed views: the loss must fall as the net fits them
    losses = []
    for _ in range(10):
        net.normalize_prototypes()
        loss = swav_loss(net, loss_fn, *fixed)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1, losses


def test_prototypes_frozen_by_dropping_grads_and_encoder_keys():
    cfg = PretrainConfig(store="s", out="o", prototypes=8, hidden_dim=32, proj_dim=16, local_crops=0)
    backbone = FERModel("small", input_size=16)
    net, loss_fn = build_swav(cfg, backbone, distributed=False)
    before = [p.detach().clone() for p in net.prototype_parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = swav_loss(net, loss_fn, *multi_crop(torch.rand(8, 3, 16, 16), cfg))
    loss.backward()
    for p in net.prototype_parameters():
        p.grad = None
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.prototype_parameters()))
    enc_keys = {k[len("encoder."):] for k in net.state_dict() if k.startswith("encoder.")}
    assert enc_keys == set(backbone.encoder.state_dict())
    assert not any(k.startswith("head") for k in net.state_dict())  # unused head left out (DDP)
