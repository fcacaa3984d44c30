"""Attribution by unlearning on a small real model trained in the test: fixed noise, exact zeros at lr 0, a
training image finds itself, and the method through the registry and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from attribution_core.core.errors import AttributionError
from attribution_core.core.paths import project_root
from attribution_core.diffusion import TINY_MODEL, TrainConfig, load_model, train_diffusion
from attribution_core.diffusion.model import cross_attention_kv
from attribution_core.registry import create_attributor
from attribution_core.unlearning import UnlearningConfig, diagonal_fisher, training_losses
from attribution_core.unlearning.scores import scores_from_losses, unlearn

from .helpers import tiny_training_set

CONFIG = UnlearningConfig(
    steps=3, lr=0.05, draws=32, batches=2, score_timesteps=4, fisher_epochs=1, batch_size=64, device="cpu"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on 16 captioned photos until it knows them a little (about 15 s)."""
    folder = tmp_path_factory.mktemp("abu")
    data = tiny_training_set()
    config = TrainConfig(steps=150, batch_size=16, lr=3e-3, warmup=10, checkpoint_every=1000, device="cpu")
    train_diffusion(data, folder, TINY_MODEL, config, progress=False)
    return load_model(folder), data


def test_same_seed_gives_bit_identical_losses_whatever_the_batch(trained) -> None:
    model, data = trained
    a = training_losses(model, data, CONFIG)
    b = training_losses(model, data, replace(CONFIG, batch_size=16))
    assert a.shape == (2 * len(data),) and np.array_equal(a, b)
    assert not np.array_equal(a, training_losses(model, data, replace(CONFIG, seed=1)))


def test_zero_learning_rate_gives_exactly_zero_influence(trained) -> None:
    model, data = trained
    fisher = diagonal_fisher(model, data, CONFIG)
    assert set(fisher) == set(cross_attention_kv(model.unet)) and all((f >= 0).all() for f in fisher.values())
    before = training_losses(model, data, CONFIG)
    unlearn(model, data.images[0], data.captions[0], fisher, len(data), replace(CONFIG, lr=0.0))
    assert np.array_equal(scores_from_losses(before, training_losses(model, data, CONFIG)), np.zeros(len(data)))


def test_a_training_image_used_as_the_query_finds_itself_and_its_photo(demo_bundle) -> None:
    """The demo model, default settings: a corpus image unlearned with its caption puts views of its own photo in
    all of the top 10 and is itself first, or tied for first with near-duplicates: at 16×16 several views of the
    brick wall differ from it by a tenth of the usual pixel distance, and their loss rises are within 1% of its own
    (measured: 0.7%, rank 8; a random ranking would put it near 510)."""
    attributor = create_attributor("demo_unlearning", device="cpu")
    data = attributor.data
    photo = np.array([p.split("/")[1] for p in data.paths])
    scores, _ = attributor.scores_of(data.images[0], data.captions[0])
    top = np.argsort(-scores)[:10]
    assert (photo[top] == photo[0]).all(), data.paths[0]
    assert scores[0] >= 0.99 * scores.max() and int((scores > scores[0]).sum()) < 10
    others = scores[photo != photo[0]]
    assert scores[0] > 2 * np.median(others)  # far above the images of other photos


def test_unlearning_space_needs_a_prompt_and_answers_the_query_schema(demo_bundle, tmp_path) -> None:
    """The demo's unlearning space through the CLI: the prompt comes from the PNG's metadata; none -> one line."""
    fast = ["--steps", "2", "--draws", "16", "--batches", "1", "--score-timesteps", "2", "--fisher-epochs", "1"]
    png = tmp_path / "q.png"
    sample = subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", "diffusion", "sample", "--prompt", "a photo of coins",
         "--seed", "1", "--steps", "10", "--out", str(png)],
        capture_output=True, text=True, cwd=project_root(), timeout=300,
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr
    out = subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", "unlearn", str(png), "-k", "5", "--json", *fast],
        capture_output=True, text=True, cwd=project_root(), timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["method"] == "unlearning" and result["score_kind"] == "delta_loss"
    assert [r["rank"] for r in result["results"]] == [1, 2, 3, 4, 5]
    assert result["extras"]["prompt"] == "a photo of coins"
    assert sum(r["influence"] for r in result["results"]) + result["remaining_influence"] == pytest.approx(1.0)
    jpg = tmp_path / "q.jpg"
    from PIL import Image

    Image.open(png).convert("RGB").save(jpg)  # a JPEG carries no prompt
    bare = subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", "unlearn", str(jpg), *fast],
        capture_output=True, text=True, cwd=project_root(), timeout=300,
    )  # fmt: skip
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1 and "--prompt" in bare.stderr


def test_missing_prompt_through_the_registry(demo_bundle) -> None:
    attributor = create_attributor("demo_unlearning", device="cpu")
    with pytest.raises(AttributionError, match="needs the prompt"):
        attributor.attribute([project_root() / "assets" / "chelsea_q0_object_00.jpg"], 3)


def tiny_stable_diffusion(folder) -> None:
    """A randomly initialised pipeline of Stable Diffusion's architecture, tiny, saved in the diffusers layout with
    a real CLIP BPE tokenizer (open_clip's vocabulary written as the files transformers reads)."""
    import gzip

    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from open_clip.tokenizer import SimpleTokenizer, default_bpe
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16,
    )  # fmt: skip
    bpe = SimpleTokenizer()
    (folder / "bpe").mkdir(parents=True)
    vocab = dict(bpe.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")  # the special tokens as transformers names them
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    (folder / "bpe" / "vocab.json").write_text(json.dumps(vocab))
    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    (folder / "bpe" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(
        str(folder / "bpe" / "vocab.json"), str(folder / "bpe" / "merges.txt"), model_max_length=16
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(bpe.encoder),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
        )
    )
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=DDPMScheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)  # fmt: skip
    pipe.save_pretrained(folder / "sd", safe_serialization=True)


@pytest.mark.slow
def test_the_same_code_runs_a_stable_diffusion_folder(tmp_path) -> None:
    """Latent space: a diffusers Stable Diffusion folder loads, samples, and is attributed by unlearning."""
    from PIL import Image

    from attribution_core.attribute.spaces import SpaceSpec
    from attribution_core.diffusion import SamplerSettings, generate_image
    from attribution_core.diffusion.stable import StableDiffusionModel

    tiny_stable_diffusion(tmp_path)
    model = load_model(tmp_path / "sd")
    assert isinstance(model, StableDiffusionModel) and model.config.resolution == 16
    assert model.sample_shape() == (4, 8, 8) and len(cross_attention_kv(model.unet)) > 0
    image, generation = generate_image(model, "a photo of coins", 0, SamplerSettings(steps=3))
    assert image.size == (16, 16) and generation.model == model.fingerprint()
    data = tiny_training_set(8)
    (tmp_path / "imgs").mkdir()
    lines = []
    for i, (x, caption) in enumerate(zip(data.images, data.captions, strict=True)):
        Image.fromarray(((x.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)).save(
            tmp_path / "imgs" / f"{i}.png"
        )
        lines.append(json.dumps({"path": f"{i}.png", "caption": caption}))
    (tmp_path / "captions.jsonl").write_text("\n".join(lines))
    quick = {"steps": 1, "draws": 8, "batches": 1, "score_timesteps": 2, "fisher_epochs": 1, "device": "cpu"}
    options = {"model": str(tmp_path / "sd"), "captions": str(tmp_path / "captions.jsonl"),
               "images": str(tmp_path / "imgs"), "config": quick}  # fmt: skip
    spec = SpaceSpec(name="sd", label="sd", method="unlearning", options=options)
    result = create_attributor(spec).attribute([tmp_path / "imgs" / "3.png"], 3, prompts=[data.captions[3]])[0]
    assert [a.rank for a in result.results] == [1, 2, 3] and result.score_kind == "delta_loss"
    assert result.extras["model"] == model.fingerprint()


def test_unlearning_on_candidates_scores_the_fast_spaces_top_n_exactly_as_the_full_run(demo_bundle) -> None:
    """``--candidates N``: only the candidate space's top N are scored after unlearning, each exactly as the full run
    scores it; the rest get no score and no share, and the result lists no more than it scored and says so."""
    from PIL import Image

    from attribution_core.diffusion import generate
    from attribution_core.diffusion.data import tensor_image

    quick = {"steps": 2, "draws": 16, "batches": 1, "score_timesteps": 2, "fisher_epochs": 1, "device": "cpu"}
    full = create_attributor("demo_unlearning", {"config": quick}, device="cpu")
    picked = create_attributor("demo_unlearning", {"config": {**quick, "candidates": 40}}, device="cpu")
    prompt = "a photo of coins"
    image: Image.Image = tensor_image(generate(full.model, [prompt], [5])[0].cpu())
    every = full.scores([image], prompts=[prompt])[0]
    some = picked.scores([image], prompts=[prompt])[0]
    scored = np.isfinite(some)
    assert scored.sum() == 40 and np.isfinite(every).all()
    np.testing.assert_allclose(some[scored], every[scored], rtol=1e-6, atol=1e-9)
    # the candidates are the fast space's top 40 over the same training set
    from attribution_core.attribute.rows import method_scores
    from attribution_core.demo.diffusion import CANDIDATE_SPACE

    fast = method_scores(create_attributor(CANDIDATE_SPACE), image, prompt, full.data)
    assert set(np.flatnonzero(scored)) == set(np.argsort(-fast, kind="stable")[:40].tolist())
    (result,) = picked.attribute([image], 100, prompts=[prompt])
    assert len(result.results) == 40 and result.extras["scored"] == 40
    assert sum(a.influence for a in result.results) + result.remaining_influence == pytest.approx(1.0)
    assert "scored" not in full.attribute([image], 5, prompts=[prompt])[0].extras
    # a space that names no candidate space: --candidates asks for one, in one line
    from attribution_core.registry import get_space

    spec = get_space("demo_unlearning")
    bare = replace(spec, name="bare", options={k: v for k, v in spec.options.items() if k != "config"})
    with pytest.raises(AttributionError, match="--candidate-space NAME"):
        create_attributor(bare, {"config": {**quick, "candidates": 5}}, device="cpu")
