"""The demo text-to-image model: resumable seeded training, sampling with metadata, customisation, safe loading."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from attribution_core.core.errors import CheckpointError
from attribution_core.core.images import load_rgb
from attribution_core.core.paths import project_root
from attribution_core.core.progress import Cancelled, Progress
from attribution_core.diffusion import (
    TINY_MODEL,
    SamplerSettings,
    TrainConfig,
    generate_image,
    load_model,
    read_generation,
    save_generated,
    train_diffusion,
)
from attribution_core.diffusion.customize import CustomizeConfig, apply_customization, customize, save_customization
from attribution_core.diffusion.generation import generation_of
from attribution_core.diffusion.model import cross_attention_kv

from .helpers import tiny_training_set

FAST = TrainConfig(steps=12, batch_size=8, warmup=2, checkpoint_every=4, device="cpu")


def test_interrupted_training_resumes_to_the_same_loss_curve(tmp_path) -> None:
    data = tiny_training_set()
    straight = train_diffusion(data, tmp_path / "a", TINY_MODEL, FAST, progress=False)
    stop = threading.Event()

    def interrupt_after_six(p: Progress) -> None:
        if p.done == 6:
            stop.set()  # as Ctrl-C or a killed process would, between checkpoints

    with pytest.raises(Cancelled):
        train_diffusion(
            data, tmp_path / "b", TINY_MODEL, FAST, progress=False, on_progress=interrupt_after_six, cancel=stop
        )
    assert not (tmp_path / "b" / "model_index.json").exists()
    second = train_diffusion(data, tmp_path / "b", TINY_MODEL, FAST, progress=False)
    assert second.resumed_from == 4 and second.steps == 12  # the last checkpoint was at step 4
    np.testing.assert_allclose(second.losses, straight.losses, rtol=1e-5)
    assert load_model(tmp_path / "a").fingerprint() == load_model(tmp_path / "b").fingerprint()
    log = json.loads((tmp_path / "b" / "loss_log.json").read_text())
    assert len(log) == 12


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    train_diffusion(tiny_training_set(), folder, TINY_MODEL, replace(FAST, steps=6), progress=False)
    return folder


def test_prompt_metadata_round_trips_through_png(tiny_model, tmp_path) -> None:
    model = load_model(tiny_model)
    image, generation = generate_image(model, "a photo of coins, flipped", 7, SamplerSettings(steps=4))
    save_generated(image, generation, tmp_path / "g.png")
    back = read_generation(tmp_path / "g.png")
    assert back == generation and back.model == model.fingerprint() and back.prompt == "a photo of coins, flipped"
    assert generation_of(load_rgb(tmp_path / "g.png")) == generation  # survives the safe loader
    again, _ = generate_image(model, "a photo of coins, flipped", 7, SamplerSettings(steps=4))
    assert np.array_equal(np.asarray(again), np.asarray(image)), "same prompt, seed and model: same image"


def test_wrong_shapes_and_pickles_are_refused_in_one_line(tiny_model, tmp_path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model, bad)
    weights = bad / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({"conv_in.weight": torch.zeros(3, 3, 3, 3)}, str(weights))
    with pytest.raises(CheckpointError, match=r"weights do not fit the model's configuration \(conv_in.weight"):
        load_model(bad)
    weights.unlink()
    torch.save({"conv_in.weight": torch.zeros(1)}, bad / "unet" / "diffusion_pytorch_model.bin")  # a pickle
    out = subprocess.run(
        [sys.executable, "-m", "attribution_core", "diffusion", "sample", "--model", str(bad), "--prompt", "x",
         "--out", str(tmp_path / "x.png")],
        capture_output=True, text=True, cwd=project_root(), timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "only safetensors are read" in out.stderr


def test_customisation_changes_only_cross_attention_and_the_new_token(tiny_model, tmp_path) -> None:
    model = load_model(tiny_model)
    base = {k: v.clone() for k, v in model.unet.state_dict().items()}
    base_words = model.text_encoder.token_embedding.weight.detach().clone()
    base_fp = model.fingerprint()
    data = tiny_training_set()
    customize(model, data.images[:2], "<v1>", "a photo of <v1>", data, CustomizeConfig(steps=3, batch_size=2))
    kv = set(cross_attention_kv(model.unet))
    changed = {k for k, v in model.unet.state_dict().items() if not torch.equal(v, base[k])}
    assert changed and changed <= kv
    words = model.text_encoder.token_embedding.weight.detach()
    assert torch.equal(words[: len(base_words)], base_words), "the known words' embeddings are untouched"
    save_customization(model, "<v1>", base_fp, tmp_path / "c", {"prompt": "a photo of <v1>"})
    again = apply_customization(load_model(tiny_model), tmp_path / "c")
    assert again.fingerprint() == model.fingerprint()
    with pytest.raises(CheckpointError, match="customised from model"):
        apply_customization(again, tmp_path / "c")  # not the base model any more
