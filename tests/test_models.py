"""Model registry, forward shapes, model files: round-trip, torchvision state dicts, mismatches."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from distfer.errors import ConfigError, DataError
from distfer.models import FERModel, available, build_backbone, load_model, save_model
from distfer.models.backbones import infer_resnet_arch


def test_registry_lists_choices_on_unknown_name():
    assert {"small", "resnet18", "resnet18_small", "resnet34", "resnet50_small"} <= set(available())
    with pytest.raises(ConfigError, match="choose one of .*resnet18.*small"):
        build_backbone("resnet19")


@pytest.mark.parametrize("arch,size,dim", [("small", 32, 128), ("resnet18_small", 16, 512), ("resnet18", 64, 512)])
def test_forward_shapes(arch, size, dim):
    m = FERModel(arch, input_size=size).eval()
    x = torch.rand(2, 3, size, size)
    logits, feats = m.forward_with_features(x)
    assert logits.shape == (2, 7) and feats.shape == (2, dim) and m.feature_dim == dim
    assert torch.allclose(m(x), logits) and torch.allclose(m.features(x), feats)


def test_small_net_is_small():
    n = sum(p.numel() for p in FERModel("small").parameters())
    assert 100_000 <= n <= 300_000


def test_other_input_sizes_are_resized():
    m = FERModel("small", input_size=32).eval()
    x = torch.rand(3, 3, 16, 16)
    up = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(m(x), m(up), atol=1e-6)


@pytest.mark.parametrize("wn", [False, True])
def test_round_trip(tmp_path, wn):
    m = FERModel("small", weight_norm=wn, input_size=24, mean=(0.5, 0.5, 0.5), std=(0.2, 0.3, 0.4)).eval()
    path = save_model(m, tmp_path / "model.pt", kind="source", info={"epochs": 3})
    loaded, meta = load_model(path, arch="small", num_classes=7, kind="source")
    assert meta["input_size"] == 24 and meta["mean"] == [0.5, 0.5, 0.5] and meta["weight_norm"] is wn
    assert meta["classes"][0] == "Surprise" and meta["info"]["epochs"] == 3 and meta["feature_dim"] == 128
    x = torch.rand(4, 3, 24, 24)
    assert torch.equal(loaded(x), m(x))
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temporary file


def test_mismatches_name_expected_and_found(tmp_path):
    path = save_model(FERModel("small"), tmp_path / "model.pt", kind="ssl")
    with pytest.raises(DataError, match="architecture is 'small', expected 'resnet18'"):
        load_model(path, arch="resnet18")
    with pytest.raises(DataError, match="number of classes is 7, expected 8"):
        load_model(path, num_classes=8)
    with pytest.raises(DataError, match="kind is 'ssl'"):
        load_model(path, kind="source")


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot read model file"):
        load_model(bad)
    m = FERModel("small")
    sd = {k: v for k, v in m.state_dict().items() if "stage3" not in k}
    torch.save({"format": "distfer-model", "meta": __import__("distfer.models.checkpoint", fromlist=["x"])
                .model_meta(m, "source"), "state_dict": sd}, tmp_path / "trunc.pt")
    with pytest.raises(DataError, match="does not fit its architecture"):
        load_model(tmp_path / "trunc.pt")


def test_plain_torchvision_state_dict(tmp_path):
    net = resnet18(weights=None, num_classes=7).eval()
    torch.save(net.state_dict(), tmp_path / "tv.pt")
    model, meta = load_model(tmp_path / "tv.pt", arch="resnet18")
    assert meta["arch"] == "resnet18" and meta["kind"] == "source"
    x = torch.rand(2, 3, 112, 112)
    ref = net((x - model.mean) / model.std)  # the model normalises internally
    assert torch.allclose(model(x), ref, atol=1e-5)
    with pytest.raises(DataError, match="architecture is 'resnet18', expected 'resnet50'"):
        load_model(tmp_path / "tv.pt", arch="resnet50")
    torch.save(resnet18(weights=None, num_classes=1000).state_dict(), tmp_path / "tv1000.pt")
    with pytest.raises(DataError, match="1000 outputs, expected 7"):
        load_model(tmp_path / "tv1000.pt")


def test_infer_resnet_arch():
    small = FERModel("resnet34_small").encoder.state_dict()
    assert infer_resnet_arch(small) == "resnet34_small"
    assert infer_resnet_arch(FERModel("resnet50").encoder.state_dict()) == "resnet50"
