"""Subcommands that make models: the diffusion model (``diffusion train|sample|customize``) and the feature
method's heads and calibrator (``train-head``, ``train-calibrator``)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..core.paths import display_path
from .common import (
    add_backbone_args,
    add_config_args,
    add_device_arg,
    config_from_args,
    root_of,
)

log = logging.getLogger(__name__)


def _model_dir(args: argparse.Namespace) -> Path:
    from ..demo.diffusion import demo_model_dir

    return Path(args.model) if args.model else demo_model_dir()


def cmd_train(args: argparse.Namespace) -> int:
    from ..demo.diffusion import demo_model_dir, demo_training_set
    from ..diffusion import TINY_MODEL, ModelConfig, TrainConfig, train_diffusion
    from ..diffusion.data import load_training_set

    config = config_from_args(TrainConfig, args)
    model_config = TINY_MODEL if args.tiny else ModelConfig()
    if args.captions:
        data = load_training_set(
            Path(args.captions), Path(args.images or Path(args.captions).parent), model_config.resolution, args.prefix
        )
    else:
        data = demo_training_set(model_config.resolution)
    out = Path(args.out) if args.out else demo_model_dir()
    report = train_diffusion(data, out, model_config, config, progress=not args.quiet, stop_after=args.stop_after)
    state = "done" if report.steps >= config.steps else f"stopped at step {report.steps} (run again to resume)"
    tail = report.losses[-50:]
    print(
        f"{display_path(out)}: {len(data)} training images, {state}; mean loss of the last {len(tail)} steps "
        f"{sum(tail) / max(1, len(tail)):.4f}; {report.seconds:.0f} s"
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..diffusion import SamplerSettings, generate_image, load_model, save_generated

    model = load_model(_model_dir(args), resolve_device(args.device))
    if args.customized:
        from ..diffusion.customize import apply_customization

        apply_customization(model, args.customized)
    settings = SamplerSettings(steps=args.steps, guidance=args.guidance, eta=args.eta)
    image, generation = generate_image(model, args.prompt, args.seed, settings)
    if args.display_size and args.display_size > image.width:
        from PIL import Image

        image = image.resize((args.display_size, args.display_size), Image.NEAREST)
    save_generated(image, generation, args.out)
    print(f"{args.out}: “{args.prompt}”, seed {args.seed}, model {generation.model}")
    return 0


def cmd_customize(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..core.images import load_rgb
    from ..demo.diffusion import demo_training_set
    from ..diffusion import image_tensor, load_model
    from ..diffusion.customize import CustomizeConfig, customize, save_customization

    model = load_model(_model_dir(args), resolve_device(args.device))
    base = model.fingerprint()
    exemplars = [image_tensor(load_rgb(Path(p), p), model.config.resolution) for p in args.exemplars]
    prompt = args.prompt or f"a photo of {args.token}"
    if args.token not in prompt.split():
        from ..core.errors import AttributionError

        raise AttributionError(f"--prompt must contain the token {args.token!r} as a word: {prompt!r}")
    import torch

    config = config_from_args(CustomizeConfig, args)
    customize(
        model,
        torch.stack(exemplars),
        args.token,
        prompt,
        demo_training_set(model.config.resolution),
        config,
        progress=not args.quiet,
    )
    save_customization(model, args.token, base, args.out, {"exemplars": list(args.exemplars), "prompt": prompt})
    print(f"{args.out}: {len(exemplars)} exemplars taught as {args.token} (“{prompt}”)")
    return 0


def cmd_train_head(args: argparse.Namespace) -> int:
    from ..features.train import HeadTrainingConfig, train_heads, training_inputs
    from ..heads import save_heads

    _, (train, val), corpus = training_inputs(
        args.backbone, args.feats, [args.train, args.val], root_of(args), args.weights, args.device, not args.quiet
    )
    heads, report = train_heads(train, val, corpus, config_from_args(HeadTrainingConfig, args), not args.quiet)
    save_heads(heads, args.out)
    Path(args.out).with_suffix(".log.json").write_text(json.dumps(report.history, indent=1))
    first = report.history[0]
    print(
        f"{args.out}: {heads.kind} heads, best epoch {report.best_epoch}; validation recall@10 "
        f"{first['val_recall@10']:.4f} -> {report.best['val_recall@10']:.4f}, mAP {first['val_mAP']:.4f} -> "
        f"{report.best['val_mAP']:.4f}"
    )
    return 0


def cmd_train_calibrator(args: argparse.Namespace) -> int:
    from ..attribute.calibration import save_calibrator
    from ..features.train import CalibratorTrainingConfig, calibration_scores, fit_calibrator, training_inputs
    from ..heads import identity_heads, load_heads

    backbone, (val,), corpus = training_inputs(
        args.backbone, args.feats, [args.val], root_of(args), args.weights, args.device, not args.quiet
    )
    config = config_from_args(CalibratorTrainingConfig, args)
    heads = load_heads(args.mapper, backbone.dim) if args.mapper else identity_heads(backbone.dim)
    selected, counts = calibration_scores(heads, val, corpus, top=config.top)
    calibrator = fit_calibrator(selected, counts, steps=config.steps, lr=config.lr, progress=not args.quiet)
    save_calibrator(calibrator, args.out)
    print(f"{args.out}: {calibrator.describe()}")
    return 0


def add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", required=True)
    p.add_argument("--feats", required=True, help="corpus store (or released .pth) of other training images")
    p.add_argument("--root", help="folder the JSON's image paths are relative to (default: the project root)")
    add_backbone_args(p, download=False)
    p.add_argument("--out", required=True, help="checkpoint to write (released format)")


def add_commands(command) -> None:
    """Register ``diffusion train|sample|customize``, ``train-head`` and ``train-calibrator``."""
    from ..diffusion import TrainConfig
    from ..diffusion.config import CustomizeConfig
    from ..diffusion.generation import SamplerSettings
    from ..features.train import CalibratorTrainingConfig, HeadTrainingConfig

    group = command("diffusion", "the demo text-to-image diffusion model: train, sample", None)
    inner = group.add_subparsers(dest="diffusion_command", required=True, metavar="ACTION")

    p = command("train", "train (or resume training) a diffusion model on captioned images", cmd_train, inner)
    p.add_argument("--out", help="model folder (default: the demo model's)")
    p.add_argument("--captions", help="JSON lines {path, caption} (default: the demo corpus's captions)")
    p.add_argument("--images", help="folder the captions' paths are relative to (default: the captions file's)")
    p.add_argument("--prefix", default="", help="only images whose path starts with this")
    p.add_argument("--tiny", action="store_true", help="a tiny architecture (tests, CI)")
    p.add_argument("--stop-after", type=int, help="stop after this many steps of this run (resume later)")
    add_config_args(p, TrainConfig)

    p = command(
        "sample", "generate an image from a prompt (PNG with prompt, seed and model in its metadata)", cmd_sample, inner
    )
    p.add_argument("--prompt", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--model", help="model folder (default: the demo model)")
    default = SamplerSettings()
    p.add_argument("--steps", type=int, default=default.steps, help=f"DDIM steps (default {default.steps})")
    p.add_argument(
        "--guidance", type=float, default=default.guidance, help=f"guidance scale (default {default.guidance:g})"
    )
    p.add_argument("--eta", type=float, default=default.eta, help=f"DDIM eta, 0 to 1 (default {default.eta:g})")
    p.add_argument("--display-size", type=int, default=0, help="also upscale the PNG to this side (nearest)")
    p.add_argument("--customized", help="a customised model's folder (from `attribute diffusion customize`)")
    add_device_arg(p)

    p = command(
        "customize", "teach the model a new token from 1-4 exemplar images (Custom Diffusion)", cmd_customize, inner
    )
    p.add_argument("--exemplars", nargs="+", required=True, metavar="IMAGE")
    p.add_argument("--token", required=True, help="the new word, e.g. '<v1>'")
    p.add_argument("--prompt", help="the training prompt (default: 'a photo of TOKEN')")
    p.add_argument("--out", required=True, help="folder for the customisation (a small delta)")
    p.add_argument("--model", help="base model folder (default: the demo model)")
    add_device_arg(p)
    add_config_args(p, CustomizeConfig)

    p = command(
        "train-head", "train real/synth heads (linear, mlp or channel) on an AbC training split", cmd_train_head
    )
    p.add_argument("--train", required=True, metavar="JSON", help="training split (AbC test-case format)")
    p.add_argument("--val", required=True, metavar="JSON", help="validation split (early stopping)")
    add_training_args(p)
    add_config_args(p, HeadTrainingConfig)

    p = command("train-calibrator", "fit the calibrator (inv_tau, bias) on a validation split", cmd_train_calibrator)
    p.add_argument("--val", required=True, metavar="JSON", help="validation split (AbC test-case format)")
    p.add_argument("--mapper", help="the space's heads (default: identity)")
    add_training_args(p)
    add_config_args(p, CalibratorTrainingConfig)
