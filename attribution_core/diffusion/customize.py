"""Custom Diffusion-style customisation: teach a trained model a new token from 1–4 exemplar images by
fine-tuning only the cross-attention key/value weights and the new token's embedding (how AbC makes ground truth:
images the customised model generates are influenced by the exemplars by construction; docs/method.md §2).

Regularisation, as Custom Diffusion's prior preservation: every step also fits a batch of the original training
images with their captions, so the model keeps what it knew. The result is saved as a small delta (the k/v
weights, the new embedding row, the token) applied to the base model on load.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..core.errors import CheckpointError
from ..core.fileio import atomic_path, atomic_write_json
from ..core.paths import display_path
from ..core.progress import CancelFlag, ProgressCallback, tracked
from .config import CustomizeConfig
from .data import TrainingSet
from .model import TextToImageModel, cross_attention_kv

DELTA_FILE = "delta.safetensors"
META_FILE = "customization.json"


def customize(
    model: TextToImageModel,
    exemplars: torch.Tensor,
    token: str,
    prompt: str,
    regularization: TrainingSet,
    config: CustomizeConfig = CustomizeConfig(),
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> TextToImageModel:
    """Fine-tune ``model`` in place on ``exemplars`` [E, 3, r, r] with ``prompt`` (which contains ``token``).

    Returns:
        The same model, customised.
    """
    device = model.device
    token_id = model.tokenizer.add_token(token)
    model.text_encoder.grow_vocabulary(model.tokenizer.vocab_size)
    model.text_encoder.to(device)
    for p in [*model.unet.parameters(), *model.text_encoder.parameters()]:
        p.requires_grad_(False)
    kv = cross_attention_kv(model.unet)
    embedding = model.text_encoder.token_embedding.weight
    for p in [*kv.values(), embedding]:
        p.requires_grad_(True)
    opt = torch.optim.Adam([*kv.values(), embedding], lr=config.lr)
    only_new = torch.zeros(embedding.shape[0], 1, device=device)
    only_new[token_id] = 1  # only the new token's row is trained
    n_total = model.config.num_train_timesteps
    for step in tracked(
        range(config.steps),
        f"customize {token}",
        progress=progress,
        on_progress=on_progress,
        cancel=cancel,
        unit="step",
    ):
        g = torch.Generator().manual_seed(config.seed * 7_000_003 + step)
        b = config.batch_size
        ex = exemplars[torch.randint(len(exemplars), (b,), generator=g)]
        ex = torch.where((torch.rand(b, generator=g) < 0.5)[:, None, None, None], ex.flip(-1), ex)
        reg_idx = torch.randint(len(regularization), (b,), generator=g)
        images = torch.cat([ex, regularization.images[reg_idx]]).to(device)
        captions = [prompt] * b + [regularization.captions[i] for i in reg_idx.tolist()]
        t = torch.randint(0, n_total, (2 * b,), generator=g).to(device)
        noise = torch.randn(images.shape, generator=g).to(device)
        loss = model.losses(images, model.encode_prompts(captions), t, noise).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        embedding.grad.mul_(only_new)
        opt.step()
    for p in [*kv.values(), embedding]:
        p.requires_grad_(False)
    model.unet.eval()
    model.text_encoder.eval()
    return model


def save_customization(model: TextToImageModel, token: str, base: str, folder: Path | str, info: dict) -> None:
    """Write the delta: k/v weights and the new embedding row (safetensors), and what it was made from."""
    folder = Path(folder)
    token_id = model.tokenizer.add_token(token)
    tensors = {f"unet.{k}": v.detach().cpu().contiguous() for k, v in cross_attention_kv(model.unet).items()}
    tensors["token_embedding"] = model.text_encoder.token_embedding.weight[token_id].detach().cpu().contiguous()
    with atomic_path(folder / DELTA_FILE, ".safetensors") as tmp:
        save_file(tensors, str(tmp))
    atomic_write_json(folder / META_FILE, {"token": token, "base_model": base, **info})


def apply_customization(model: TextToImageModel, folder: Path | str) -> TextToImageModel:
    """Turn a loaded base model into the customised one (in place).

    Raises:
        CheckpointError: the delta is missing, damaged or made for another base model.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text())
        tensors = load_file(str(folder / DELTA_FILE))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{display_path(folder)}: not a customised-model folder ({exc})") from None
    if meta.get("base_model") != model.fingerprint():
        raise CheckpointError(
            f"{display_path(folder)}: customised from model {meta.get('base_model')}, not "
            f"{model.fingerprint()}; customise the current model again"
        )
    token_id = model.tokenizer.add_token(meta["token"])
    model.text_encoder.grow_vocabulary(model.tokenizer.vocab_size)
    model.text_encoder.to(model.device)
    kv = cross_attention_kv(model.unet)
    with torch.no_grad():
        for k, p in kv.items():
            p.copy_(tensors[f"unet.{k}"])
        model.text_encoder.token_embedding.weight[token_id] = tensors["token_embedding"]
    return model
