"""Subcommands of the demo diffusion model and of attribution by unlearning: ``diffusion train|sample|customize``
and ``unlearn``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..paths import display_path
from .common import add_config_args, add_device_arg, config_from_args, print_results


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
    from ..device import resolve_device
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
    from ..demo.diffusion import demo_training_set
    from ..device import resolve_device
    from ..diffusion import image_tensor, load_model
    from ..diffusion.customize import CustomizeConfig, customize, save_customization
    from ..images import load_rgb

    model = load_model(_model_dir(args), resolve_device(args.device))
    base = model.fingerprint()
    exemplars = [image_tensor(load_rgb(Path(p), p), model.config.resolution) for p in args.exemplars]
    prompt = args.prompt or f"a photo of {args.token}"
    if args.token not in prompt.split():
        from ..errors import AttributionError

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


def cmd_unlearn(args: argparse.Namespace) -> int:
    from ..attribute import check_k
    from ..demo.diffusion import unlearning_space
    from ..images import QUERY_MAX_SIDE, load_rgb
    from ..registry import create_attributor
    from ..unlearning import UnlearningConfig

    k = check_k(args.top_k)
    images = [load_rgb(Path(p), p, QUERY_MAX_SIDE) for p in args.images]
    config = config_from_args(UnlearningConfig, args)
    spec = unlearning_space(Path(args.model) if args.model else None)
    attributor = create_attributor(spec, device=config.device, unlearning=dataclasses.asdict(config))
    print_results(attributor.attribute(images, k, names=list(args.images), prompts=[args.prompt] * len(images)), args)
    return 0


def cmd_counterfactual(args: argparse.Namespace) -> int:
    from ..counterfactual import CounterfactualConfig, run_counterfactual, write_report
    from ..counterfactual.run import default_output

    config = config_from_args(CounterfactualConfig, args)
    out = Path(args.out) if args.out else default_output(config)
    rows = run_counterfactual(config, out, progress=not args.quiet)
    print(write_report(rows, out), end="")
    return 0


def cmd_lds(args: argparse.Namespace) -> int:
    from ..counterfactual.config import LdsConfig
    from ..counterfactual.lds_report import report_lds
    from ..counterfactual.lds_run import default_lds_output, run_lds, train_lds_models

    config = config_from_args(LdsConfig, args)
    out = Path(args.out) if args.out else default_lds_output()
    if args.train_only:
        train_lds_models(config, out, progress=not args.quiet)
        return 0
    print(report_lds(run_lds(config, out, progress=not args.quiet), config, out), end="")
    return 0


def add_commands(command) -> None:
    """Register ``diffusion train|sample|customize``, ``unlearn``, ``counterfactual`` and ``lds``."""
    from ..counterfactual.config import CounterfactualConfig, LdsConfig
    from ..diffusion import TrainConfig
    from ..diffusion.config import CustomizeConfig
    from ..diffusion.generation import SamplerSettings
    from ..unlearning import UnlearningConfig

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

    p = command("unlearn", "attribute generated images by unlearning them from the diffusion model", cmd_unlearn)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--prompt", help="the prompt the images were generated from (default: from the PNG metadata)")
    p.add_argument("--model", help="model folder (default: the demo model, trained on the demo corpus)")
    p.add_argument("--top-k", "-k", type=int, default=10, help="training images to list per query (default 10)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per query")
    out.add_argument("--csv", action="store_true", help="a CSV table, one row per result")
    add_config_args(p, UnlearningConfig)

    p = command(
        "counterfactual",
        "leave-K-out check: retrain without each method's top-K and measure the query's loss (resumable)",
        cmd_counterfactual,
    )
    p.add_argument(
        "--out",
        help="folder for results.jsonl, table.md/.csv, delta_loss.png "
        "(default: benchmarks/results/counterfactual[_validation])",
    )
    add_config_args(p, CounterfactualConfig)

    p = command(
        "lds",
        "linear datamodeling score: every method's scores against the losses of models retrained on random "
        "subsets (shared by all queries and methods; resumable)",
        cmd_lds,
    )
    p.add_argument(
        "--out", help="folder for table.md/.csv, lds.png, scatter.png, validation/ (default: benchmarks/results/lds)"
    )
    p.add_argument("--train-only", action="store_true", help="train the base and subset models, then stop")
    add_config_args(p, LdsConfig)
