"""Backbones: real weights only. EfficientNet-Lite0 classifies a real photo; CLIP/DINO load through the real
code from files the test writes (random weights, since model hubs are unreachable here)."""

from __future__ import annotations

import pytest
import skimage.data as data
import torch
from PIL import Image

from attribution_core.backbones import create_backbone, get_backbone_spec, list_backbones
from attribution_core.backbones.efficientnet import efficientnet_lite0_classifier, packaged_weights
from attribution_core.core.errors import CheckpointError, WeightsNotFoundError

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


@pytest.mark.slow
def test_moco_checkpoint_prefix_and_head_are_handled(tmp_path) -> None:
    import timm

    torch.manual_seed(1)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0).eval()
    state = {f"module.base_encoder.{k}": v for k, v in vit.state_dict().items()}
    state["module.base_encoder.head.0.weight"] = torch.zeros(4096, 768)  # MoCo's projection head: dropped
    state["module.momentum_encoder.cls_token"] = torch.zeros(1, 1, 768)  # the momentum encoder: ignored
    torch.save({"state_dict": state, "epoch": 300}, tmp_path / "vit-b-300ep.pth.tar")
    backbone = create_backbone("moco", weights=tmp_path / "vit-b-300ep.pth.tar", device="cpu")
    x = backbone.preprocess(Image.fromarray(data.coffee()))[None]
    with torch.inference_mode():
        torch.testing.assert_close(torch.from_numpy(backbone.embed(x)), vit(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_vit_and_sscd_load_from_local_files(tmp_path) -> None:
    import timm

    vit = timm.create_model("vit_base_patch16_384", pretrained=False, num_classes=0).eval()
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    backbone = create_backbone("vit", weights=tmp_path / "vit.pth", device="cpu")
    assert backbone.preprocess(Image.fromarray(data.coffee())).shape == (3, 384, 384)

    class Descriptor(torch.nn.Module):  # stands for the released TorchScript file: conv, pool, 512-d
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 512, 7, stride=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(self.conv(x).mean(dim=(2, 3)), dim=-1)

    torch.jit.script(Descriptor()).save(str(tmp_path / "sscd.pt"))
    sscd = create_backbone("sscd", weights=tmp_path / "sscd.pt", device="cpu")
    feats = sscd.embed(sscd.preprocess(Image.fromarray(data.rocket()))[None])
    assert feats.shape == (1, 512)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a TorchScript SSCD model"):
        create_backbone("sscd", weights=tmp_path / "junk.pt", device="cpu")
