"""Backbones: real weights only. EfficientNet-Lite0 classifies a real photo; CLIP/DINO load through the real
code from files the test writes (random weights, since model hubs are unreachable here)."""

from __future__ import annotations

import pytest
import skimage.data as data
import torch
from PIL import Image

from attribution_core.backbones import create_backbone, get_backbone_spec, list_backbones
from attribution_core.backbones.efficientnet import efficientnet_lite0_classifier, packaged_weights
from attribution_core.errors import CheckpointError, WeightsNotFoundError

IMAGENET_CATS = {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"}


def test_registry_knows_the_issue_backbones() -> None:
    assert {"clip", "dino", "efficientnet_lite0", "pixel"} <= set(list_backbones())
    assert get_backbone_spec("clip").dim == 512 and get_backbone_spec("dino").dim == 768


@torch.inference_mode()
def test_efficientnet_lite0_weights_map_onto_timm_and_classify_a_cat() -> None:
    net = efficientnet_lite0_classifier(packaged_weights()).eval()
    backbone = create_backbone("efficientnet_lite0", device="cpu")
    x = backbone.preprocess(Image.fromarray(data.chelsea()))[None]
    top3 = net(x).softmax(-1)[0].topk(3).indices.tolist()
    assert set(top3) == set(IMAGENET_CATS), [IMAGENET_CATS.get(i, i) for i in top3]
    feats = backbone.embed(x)
    assert feats.shape == (1, 1280)
    coffee = backbone.embed(backbone.preprocess(Image.fromarray(data.coffee()))[None])
    cat2 = backbone.embed(backbone.preprocess(Image.fromarray(data.chelsea()).rotate(5))[None])

    def cos(a, b):
        return float((a @ b.T).item() / ((a**2).sum() ** 0.5 * (b**2).sum() ** 0.5))

    assert cos(feats, cat2) > cos(feats, coffee) + 0.1  # a real feature space, not noise


def test_no_weights_is_a_clear_error_never_random(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ATTRIBUTION_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf"))
    for name in ("clip", "dino"):
        with pytest.raises(WeightsNotFoundError) as err:
            create_backbone(name, device="cpu")
        msg = str(err.value)
        assert "weights/pretrained/" in msg and "--download" in msg and "Hugging Face" in msg


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,build",
    [
        ("clip", lambda: __import__("open_clip").create_model("ViT-B-32", pretrained=None)),
        ("dino", lambda: __import__("timm").create_model("vit_base_patch16_224.dino", pretrained=False, num_classes=0)),
    ],
)
def test_clip_and_dino_load_real_checkpoints(tmp_path, monkeypatch, name, build) -> None:
    """The product's loading code reads a checkpoint from weights/pretrained/; outputs match the saved model."""
    torch.manual_seed(0)
    model = build().eval()
    spec = get_backbone_spec(name)
    monkeypatch.setenv("ATTRIBUTION_HOME", str(tmp_path))
    weights = tmp_path / "weights" / "pretrained" / spec.weights_files[-1]
    weights.parent.mkdir(parents=True)
    torch.save(model.state_dict(), weights)
    backbone = create_backbone(name, device="cpu")
    assert backbone.weights == weights
    x = backbone.preprocess(Image.fromarray(data.astronaut()))[None]
    with torch.inference_mode():
        want = model.encode_image(x) if name == "clip" else model(x)
    got = backbone.embed(x)
    assert got.shape == (1, spec.dim)
    torch.testing.assert_close(torch.from_numpy(got), want.float(), rtol=1e-4, atol=1e-4)
    # a checkpoint of the wrong model is named, not half-loaded
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match=rf"wrong.pt: checkpoint does not fit backbone '{name}'"):
        create_backbone(name, weights=tmp_path / "wrong.pt", device="cpu")
