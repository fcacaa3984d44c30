"""Subcommands of the feature-based method and the project's data: query, extract, index, demo, spaces, evaluate,
train-head, train-calibrator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..paths import display_path, project_root
from .common import (
    add_backbone_args,
    add_config_args,
    add_device_arg,
    add_index_params,
    add_method_options,
    add_space_args,
    config_from_args,
    index_params_from_args,
    method_options_from_args,
    print_ranking,
    print_results,
    resolve_space,
    root_of,
)

DEFAULT_EVAL_SPACES = ("demo_efficientnet_lite0", "demo_pixel")


def cmd_query(args: argparse.Namespace) -> int:
    from ..attribute import check_k
    from ..images import QUERY_MAX_SIDE, load_rgb
    from ..registry import create_attributor

    k = check_k(args.top_k)
    space = resolve_space(args)
    index_params = index_params_from_args(args, args.index or space.options.get("index", "flat"), query_time=True)
    images = [load_rgb(Path(p), p, QUERY_MAX_SIDE) for p in args.images]  # all checked before any model loads
    attributor = create_attributor(
        space,
        method_options_from_args(args, space.method, space.name),
        device=args.device,
        index_kind=args.index,
        index_params=index_params,
        allow_download=args.download,
        progress=not args.quiet,
    )
    prompts = [args.prompt] * len(images) if args.prompt else None
    print_results(attributor.attribute(images, k, names=list(args.images), prompts=prompts), args)
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from ..backbones import create_backbone
    from ..errors import AttributionError
    from ..extract import extract_features

    if args.address and args.engine != "ray":
        raise AttributionError("--address goes with --engine ray (the Ray cluster to join)")
    engine = None
    if args.engine == "ray":
        from ..extract_ray import BackboneRequest, RayEngine

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


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import EXAMPLE_QUERIES, build_demo, demo_dir
    from ..registry import create_attributor

    spaces = build_demo(progress=not args.quiet, device=args.device)
    if args.no_query:
        return 0
    query = demo_dir() / EXAMPLE_QUERIES[0]
    attributor = create_attributor(spaces[0], device=args.device, progress=False)
    r = attributor.attribute([query], 5, names=[display_path(query, project_root())])[0]
    print(f"\nexample: attribute query {r.query} --space {r.space} --top-k 5")
    print_ranking(r)
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from ..registry import list_spaces, space_record

    statuses = list_spaces()
    if args.json:
        rows = [space_record(s) for s in statuses]
        print(json.dumps(rows, indent=1))
        return 0
    for s in statuses:
        mark = "ready" if s.ready else "not ready"
        print(f"{s.spec.name:30s} {mark:10s} [{s.spec.method}] {s.spec.description}")
        if not s.ready:
            print(f"{'':41s}missing: {', '.join(s.missing)}")
            if s.spec.make_ready:
                print(f"{'':41s}make ready: {s.spec.make_ready}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import describe_test_case, format_table, read_test_case, run_evaluation, write_csv, write_ranks
    from ..registry import get_space
    from ..spaces import custom_space

    test_cases = [read_test_case(p) for p in args.test_cases]
    if args.max_per_type is not None:
        from ..errors import AttributionError
        from ..evaluate.testcase import first_per_type

        if args.max_per_type < 1:
            raise AttributionError(f"--max-per-type must be at least 1, not {args.max_per_type}")
        test_cases = [first_per_type(tc, args.max_per_type) for tc in test_cases]  # every space, the same queries
    if args.describe:
        for tc in test_cases:
            print(json.dumps(describe_test_case(tc), indent=1))
        return 0
    if args.backbone and args.feats:
        spaces = [custom_space(None, args.backbone, args.feats, args.mapper, args.calibrator, args.weights)]
    else:
        spaces = [
            custom_space(get_space(n), mapper=args.mapper, calibrator=args.calibrator, weights=args.weights)
            for n in args.space or DEFAULT_EVAL_SPACES
        ]
    results = run_evaluation(
        test_cases,
        spaces,
        root_of(args),
        ks=args.ks,
        no_head=args.no_head,
        device=args.device,
        progress=not args.quiet,
        influence=args.influence,
        max_per_type=args.max_per_type,
    )
    for tc in test_cases:
        rows = [r for t, r in results if t is tc]
        n = sum(len(v) for m in tc.models for v in m.synth.values())
        print(f"\n{tc.name} ({len(tc.models)} models, {n} synthesized images)\n{format_table(tc, rows)}")
    if args.out:
        write_csv(args.out, results)
        print(f"\nwrote {args.out}")
    if args.dump_ranks:
        write_ranks(args.dump_ranks, results)
        print(f"wrote {args.dump_ranks}")
    return 0


def cmd_train_head(args: argparse.Namespace) -> int:
    from ..heads import save_heads
    from ..train import HeadTrainingConfig, train_heads, training_inputs

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
    from ..calibration import save_calibrator
    from ..heads import identity_heads, load_heads
    from ..train import CalibratorTrainingConfig, calibration_scores, fit_calibrator, training_inputs

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
    """Register this module's subcommands (``command(name, help, func)`` makes one)."""
    from ..index import get_index_kind, list_index_kinds
    from ..train import CalibratorTrainingConfig, HeadTrainingConfig

    p = command("query", "attribute generated images to the training set", cmd_query)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", "-k", type=int, default=10, help="training images to list per query (default 10)")
    p.add_argument(
        "--index",
        metavar="KIND",
        help=f"index kind: {', '.join(list_index_kinds())} (default: the space's options.index, else flat)",
    )
    add_index_params(p, query_time=True)
    p.add_argument("--prompt", help="the text prompt of the generated images (methods that need one)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per query")
    out.add_argument("--csv", action="store_true", help="a CSV table, one row per result")
    add_space_args(p)
    add_method_options(p)

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

    p = command("demo", "build the offline demo bundle (idempotent) and answer one demo query", cmd_demo)
    p.add_argument("--no-query", action="store_true", help="only build")
    add_device_arg(p)

    p = command("evaluate", "AbC benchmark: Recall@K and mAP of spaces on test-case JSON files", cmd_evaluate)
    p.add_argument(
        "test_cases", nargs="+", metavar="JSON", help="AbC test-case files (e.g. dataset/json/test_demo.json)"
    )
    p.add_argument("--space", action="append", help="named space to evaluate (repeatable; default: the demo spaces)")
    p.add_argument("--backbone", help="backbone of a custom space (with --feats)")
    p.add_argument("--feats", help="corpus store or released {feats, paths} .pth of a custom space")
    p.add_argument("--mapper", help="head checkpoint (released format)")
    p.add_argument("--calibrator", help="calibrator checkpoint (released format), for --influence")
    add_backbone_args(p, download=False)
    p.add_argument("--no-head", action="store_true", help="evaluate the raw backbone (the paper's 'pretrained' rows)")
    p.add_argument("--root", help="folder the JSON's image paths are relative to (default: the project root)")
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10, 100], help="recall cut-offs (default 5 10 100)")
    p.add_argument("--out", help="write the table as CSV")
    p.add_argument("--dump-ranks", metavar="FILE", help="write every synthesized image's exemplar ranks (JSON lines)")
    p.add_argument("--describe", action="store_true", help="only report each test case's structure")
    p.add_argument(
        "--max-per-type",
        type=int,
        help="only the first N synthesized images per model and prompt type, for every space (bounds a slow "
        "method's time; rows stay comparable)",
    )
    p.add_argument(
        "--influence",
        action="store_true",
        help="also report <type>-influence: mean calibrated influence on the true exemplars",
    )

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

    p = command("spaces", "list spaces (every method) and whether each is ready", cmd_spaces)
    p.add_argument("--json", action="store_true")
