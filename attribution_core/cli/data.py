"""Subcommands of the data plane: ``extract`` (images -> a feature store) and ``index`` (a store -> a FAISS index)."""

from __future__ import annotations

import argparse
import logging

from ..core.paths import display_path
from .common import (
    add_backbone_args,
    add_device_arg,
    add_index_params,
    index_params_from_args,
)

log = logging.getLogger(__name__)


def cmd_extract(args: argparse.Namespace) -> int:
    from ..backbones import create_backbone
    from ..core.errors import AttributionError
    from ..data.extract import extract_features

    if args.address and args.engine != "ray":
        raise AttributionError("--address goes with --engine ray (the Ray cluster to join)")
    engine = None
    if args.engine == "ray":
        from ..data.extract_ray import BackboneRequest, RayEngine

        device = "cuda" if args.gpus_per_worker else "cpu"
        spec = BackboneRequest(args.backbone, str(args.weights) if args.weights else None, device, args.download)
        engine = RayEngine(spec, args.address, args.workers, args.cpus_per_worker, args.gpus_per_worker)
        backbone = create_backbone(args.backbone, args.weights, "cpu", args.download)  # name and size only
    else:
        backbone = create_backbone(args.backbone, args.weights, args.device, args.download)
    report = extract_features(
        args.images,
        args.out,
        backbone,
        batch_size=args.batch_size,
        root=args.root,
        progress=not args.quiet,
        engine=engine,
    )
    print(report.summary())
    if args.verbose:
        for s in report.skipped:
            print(f"  skipped {s.path}: {s.reason}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from ..index import open_index

    params = index_params_from_args(args, args.kind, query_time=False) or None
    index, built = open_index(
        args.store, args.mapper, args.kind, args.rebuild, not args.quiet, args.device, params=params
    )
    state = "built" if built else "up to date"
    print(f"{display_path(index.path)}: {index.kind} index over {index.ntotal} images ({state})")
    return 0


def add_commands(command) -> None:
    """Register ``extract`` and ``index``."""
    from ..index import get_index_kind, list_index_kinds

    p = command("extract", "embed every image under folders into a feature store (resumable)", cmd_extract)
    p.add_argument("--backbone", required=True, help="backbone name (efficientnet_lite0, clip, dino, pixel, ...)")
    p.add_argument(
        "--images",
        required=True,
        nargs="+",
        metavar="DIR",
        help="image folder(s), searched recursively; webdataset .tar shards in them (img2dataset's format) are read "
        "with their captions and URLs",
    )
    p.add_argument("--out", required=True, metavar="STORE", help="feature store folder to write")
    p.add_argument("--root", help="folder that stored paths are relative to (default: the folders' common parent)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--engine",
        default="local",
        choices=("local", "ray"),
        help="local: this process (default); ray: a pool of Ray Data actors (a local Ray instance, or --address)",
    )
    p.add_argument("--address", help="ray: the cluster to join (auto, HOST:PORT or ray://HOST:PORT)")
    p.add_argument("--workers", type=int, default=2, help="ray: embedding actors (default 2)")
    p.add_argument("--cpus-per-worker", type=float, default=1, help="ray: CPUs per actor (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="ray: GPUs per actor (default 0: CPU)")
    add_backbone_args(p)

    p = command("index", "build a FAISS index over a store's head-mapped features", cmd_index)
    p.add_argument("store", metavar="STORE")
    kinds = "; ".join(get_index_kind(k).summary for k in list_index_kinds())
    p.add_argument("--kind", default="flat", metavar="KIND", help=f"{kinds}".replace("%", "%%"))
    add_index_params(p, query_time=False)
    p.add_argument("--mapper", help="head checkpoint whose real_mapper maps the store (default: identity)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if an up-to-date index exists")
    add_device_arg(p, "where the index searches")
