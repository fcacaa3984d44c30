"""The ``attribute`` command: argparse subcommands, each one calling one public library function."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import AttributionError

if TYPE_CHECKING:
    from .attribute import AttributionResult
from .paths import project_root

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _add_backbone_args(p: argparse.ArgumentParser | argparse._ArgumentGroup, download: bool = True) -> None:
    """``--weights``, ``--device`` (and ``--download``): how a backbone is loaded, the same on every command."""
    p.add_argument("--weights", help="backbone weights file (default: weights/pretrained/ or the library cache)")
    if download:
        p.add_argument("--download", action="store_true", help="let open_clip/timm download backbone weights if absent")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")


def _add_space_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("feature space (a named space, optionally with parts replaced)")
    g.add_argument("--space", help="named space (see `attribute spaces`); default: clip when ready, else the demo")
    g.add_argument("--backbone", help="backbone name (with --feats, makes a custom space)")
    g.add_argument("--feats", help="feature store folder, or a released {feats, paths} .pth file")
    g.add_argument("--mapper", help="released-format head checkpoint (real + synth mapper), or 'identity'")
    g.add_argument("--calibrator", help="released-format calibrator checkpoint")
    _add_backbone_args(g)


def _resolve_space(args: argparse.Namespace):
    from .spaces import custom_space, get_space, space_status

    if args.space:
        base = get_space(args.space)
    elif args.feats and args.backbone:
        base = None
    else:
        base = get_space("clip")
        if not space_status(base).ready:
            base = get_space("demo_efficientnet_lite0")
    return custom_space(base, args.backbone, args.feats, args.mapper, args.calibrator, args.weights)


def cmd_query(args: argparse.Namespace) -> int:
    from .attribute import FeatureAttributor, results_to_csv, results_to_jsonl
    from .images import load_rgb

    images = [load_rgb(Path(p), p) for p in args.images]  # every query checked before any model loads
    spec = _resolve_space(args)
    attributor = FeatureAttributor.load(spec, args.device, args.index, args.download, progress=not args.quiet)
    results = attributor.attribute(images, args.top_k, names=list(args.images))
    if args.csv:
        sys.stdout.write(results_to_csv(results))
    elif args.json:
        sys.stdout.write(results_to_jsonl(results))
    else:
        for r in results:
            print(f"{r.query}  [{r.space}; {r.calibrator.describe()}]")
            _print_ranking(r)
    return 0


def _print_ranking(result: AttributionResult) -> None:
    """Rank, influence, score and path of each attributed image, then the remaining influence."""
    from .paths import display_path

    for a in result.results:
        print(f"  {a.rank:4d}  {a.influence * 100:6.2f}%  score {a.score:.4f}  {display_path(a.path)}")
    print(f"  remaining influence: {result.remaining_influence * 100:.2f}%")


def cmd_extract(args: argparse.Namespace) -> int:
    from .backbones import create_backbone
    from .extract import extract_features

    backbone = create_backbone(args.backbone, args.weights, args.device, args.download)
    report = extract_features(
        args.images, args.out, backbone, batch_size=args.batch_size, root=args.root, progress=not args.quiet
    )
    print(report.summary())
    if args.verbose:
        for s in report.skipped:
            print(f"  skipped {s.path}: {s.reason}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from .heads import identity_heads, load_heads
    from .index import build_index, load_index
    from .paths import display_path
    from .store import FeatureStore

    store = FeatureStore.open(args.store)
    heads = load_heads(args.mapper, store.dim) if args.mapper else identity_heads(store.dim)
    if args.rebuild:
        index, built = build_index(store, heads, args.kind, progress=not args.quiet), True
    else:
        index, built = load_index(store, heads, args.kind, progress=not args.quiet)
    state = "built" if built else "up to date"
    print(f"{display_path(index.path)}: {index.kind} index over {index.ntotal} images ({state})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import build_demo, demo_spaces
    from .paths import project_root

    build_demo(progress=not args.quiet, device=args.device)
    if args.no_query:
        return 0
    from .attribute import FeatureAttributor
    from .demo import EXAMPLE_QUERIES, demo_dir
    from .paths import display_path

    query = demo_dir() / EXAMPLE_QUERIES[0]
    attributor = FeatureAttributor.load(demo_spaces()[0], args.device, progress=False)
    r = attributor.attribute([query], 5, names=[display_path(query, project_root())])[0]
    print(f"\nexample: attribute query {r.query} --space {r.space} --top-k 5")
    _print_ranking(r)
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from .spaces import list_spaces

    statuses = list_spaces()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": s.spec.name,
                        "label": s.spec.label,
                        "backbone": s.spec.backbone,
                        "ready": s.ready,
                        "missing": list(s.missing),
                        "make_ready": s.spec.make_ready,
                    }
                    for s in statuses
                ],
                indent=1,
            )
        )
        return 0
    for s in statuses:
        mark = "ready" if s.ready else "not ready"
        print(f"{s.spec.name:26s} {mark:10s} {s.spec.description}")
        if not s.ready:
            print(f"{'':37s}missing: {', '.join(s.missing)}")
            print(f"{'':37s}make ready: {s.spec.make_ready}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import describe_test_case, format_table, read_test_case, run_evaluation, write_csv
    from .spaces import custom_space, get_space

    test_cases = [read_test_case(p) for p in args.test_cases]
    if args.describe:
        for tc in test_cases:
            print(json.dumps(describe_test_case(tc), indent=1))
        return 0
    if args.backbone and args.feats:
        spaces = [custom_space(None, args.backbone, args.feats, args.mapper, args.calibrator, args.weights)]
    else:
        names = args.space or ["demo_efficientnet_lite0", "demo_pixel"]
        spaces = [
            custom_space(get_space(n), mapper=args.mapper, calibrator=args.calibrator, weights=args.weights)
            for n in names
        ]
    root = Path(args.root).resolve() if args.root else project_root()
    results = run_evaluation(
        test_cases, spaces, root, args.ks, args.no_head, args.device, not args.quiet, args.influence
    )
    for tc in test_cases:
        rows = [r for t, r in results if t is tc]
        n = sum(len(v) for m in tc.models for v in m.synth.values())
        print(f"\n{tc.name} ({len(tc.models)} models, {n} synthesized images)\n{format_table(tc, rows)}")
    if args.out:
        write_csv(args.out, results)
        print(f"\nwrote {args.out}")
    if args.dump_ranks:
        with open(args.dump_ranks, "w") as f:
            for _, r in results:
                for row in r.ranks:
                    f.write(json.dumps(row) + "\n")
        print(f"wrote {args.dump_ranks}")
    return 0


def _training_inputs(args: argparse.Namespace, json_files: list[str]):
    """Backbone, features of each split, and corpus features without the splits' exemplars."""
    from .backbones import create_backbone
    from .evaluate import corpus_rows_without, read_test_case, test_case_features
    from .store import FeatureStore, resolve_store
    from .train import FeatureSplit

    backbone = create_backbone(args.backbone, args.weights, args.device)
    root = Path(args.root).resolve() if args.root else project_root()
    cases = [read_test_case(p) for p in json_files]
    store = FeatureStore.open(resolve_store(Path(args.feats), args.backbone))
    store.check_backbone(backbone.name, backbone.dim)
    corpus = np.asarray(store.feats[corpus_rows_without(store, root, cases)])
    splits = [
        FeatureSplit.from_test_case(tc, test_case_features(tc, backbone, root, progress=not args.quiet)) for tc in cases
    ]
    return backbone, splits, corpus


def cmd_train_head(args: argparse.Namespace) -> int:
    from .heads import save_heads
    from .train import HeadTrainingConfig, train_heads

    _, (train, val), corpus = _training_inputs(args, [args.train, args.val])
    config = HeadTrainingConfig(
        temperature=args.temperature,
        lr=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        negatives=args.negatives,
        max_epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        device=args.device_train,
    )
    heads, report = train_heads(
        train,
        val,
        corpus,
        config,
        progress=not args.quiet,
        log=None if args.quiet else lambda m: print(m, file=sys.stderr),
    )
    save_heads(heads, args.out)
    Path(args.out).with_suffix(".log.json").write_text(json.dumps(report.history, indent=1))
    first = report.history[0]
    print(
        f"{args.out}: best epoch {report.best_epoch}; validation recall@10 {first['val_recall@10']:.4f} -> "
        f"{report.best['val_recall@10']:.4f}, mAP {first['val_mAP']:.4f} -> {report.best['val_mAP']:.4f}"
    )
    return 0


def cmd_train_calibrator(args: argparse.Namespace) -> int:
    from .calibration import save_calibrator
    from .heads import identity_heads, load_heads
    from .train import calibration_scores, fit_calibrator

    backbone, (val,), corpus = _training_inputs(args, [args.val])
    heads = load_heads(args.mapper, backbone.dim) if args.mapper else identity_heads(backbone.dim)
    selected, counts = calibration_scores(heads, val, corpus, top=args.top)
    calibrator = fit_calibrator(selected, counts, steps=args.steps, lr=args.lr, progress=not args.quiet)
    save_calibrator(calibrator, args.out)
    print(f"{args.out}: {calibrator.describe()}")
    return 0


def _add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", required=True)
    p.add_argument("--feats", required=True, help="corpus store (or released .pth) of other training images")
    p.add_argument("--root", help="folder the JSON's image paths are relative to (default: the project root)")
    _add_backbone_args(p, download=False)
    p.add_argument("--out", required=True, help="checkpoint to write (released format)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attribute",
        description="Data attribution for text-to-image models: which training images influenced a generated "
        "image, and how much (calibrated influence).",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("query", help="attribute generated images to the training set")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", "-k", type=int, default=10, help="training images to list per query (default 10)")
    p.add_argument("--index", default="flat", choices=["flat", "ivf", "hnsw"], help="index kind (default flat)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per query")
    out.add_argument("--csv", action="store_true", help="a CSV table, one row per result")
    _add_space_args(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("extract", help="embed every image under folders into a feature store (resumable)")
    p.add_argument("--backbone", required=True, help="backbone name (efficientnet_lite0, clip, dino, pixel, ...)")
    p.add_argument("--images", required=True, nargs="+", metavar="DIR", help="image folder(s), searched recursively")
    p.add_argument("--out", required=True, metavar="STORE", help="feature store folder to write")
    p.add_argument("--root", help="folder that stored paths are relative to (default: the folders' common parent)")
    p.add_argument("--batch-size", type=int, default=32)
    _add_backbone_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="list every skipped file and why")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("index", help="build a FAISS index over a store's head-mapped features")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--kind", default="flat", choices=["flat", "ivf", "hnsw"], help="flat (exact, default), ivf, hnsw")
    p.add_argument("--mapper", help="head checkpoint whose real_mapper maps the store (default: identity)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if an up-to-date index exists")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("demo", help="build the offline demo bundle (idempotent) and answer one demo query")
    p.add_argument("--no-query", action="store_true", help="only build")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("evaluate", help="AbC benchmark: Recall@K and mAP of feature spaces on test-case JSON files")
    p.add_argument(
        "test_cases", nargs="+", metavar="JSON", help="AbC test-case files (e.g. dataset/json/test_demo.json)"
    )
    p.add_argument("--space", action="append", help="named space to evaluate (repeatable; default: the demo spaces)")
    p.add_argument("--backbone", help="backbone of a custom space (with --feats)")
    p.add_argument("--feats", help="corpus store or released {feats, paths} .pth of a custom space")
    p.add_argument("--mapper", help="head checkpoint (released format)")
    p.add_argument("--calibrator", help="calibrator checkpoint (released format), for --influence")
    _add_backbone_args(p, download=False)
    p.add_argument("--no-head", action="store_true", help="evaluate the raw backbone (the paper's 'pretrained' rows)")
    p.add_argument("--root", help="folder the JSON's image paths are relative to (default: the project root)")
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10, 100], help="recall cut-offs (default 5 10 100)")
    p.add_argument("--out", help="write the table as CSV")
    p.add_argument("--dump-ranks", metavar="FILE", help="write every synthesized image's exemplar ranks (JSON lines)")
    p.add_argument("--describe", action="store_true", help="only report each test case's structure")
    p.add_argument(
        "--influence",
        action="store_true",
        help="also report <type>-influence: mean calibrated influence on the true exemplars",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train-head", help="train real/synth linear heads contrastively on an AbC training split")
    p.add_argument("--train", required=True, metavar="JSON", help="training split (AbC test-case format)")
    p.add_argument("--val", required=True, metavar="JSON", help="validation split (early stopping)")
    _add_training_args(p)
    p.add_argument("--temperature", type=float, default=0.1, help="contrastive softmax temperature (default 0.1)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--identity-penalty", type=float, default=0.0, help="weight of ‖W − I‖² (stay near the backbone)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--negatives", type=int, default=4096, help="corpus negatives per step (default 4096)")
    p.add_argument("--epochs", type=int, default=60, help="maximum epochs (default 60)")
    p.add_argument("--patience", type=int, default=8, help="epochs without validation gain before stopping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device-train", default="cpu", help="cpu or cuda for the training itself")
    p.set_defaults(func=cmd_train_head)

    p = sub.add_parser("train-calibrator", help="fit the calibrator (inv_tau, bias) on a validation split")
    p.add_argument("--val", required=True, metavar="JSON", help="validation split (AbC test-case format)")
    p.add_argument("--mapper", help="the space's heads (default: identity)")
    _add_training_args(p)
    p.add_argument("--top", type=int, default=1000, help="corpus scores per query in the loss (default 1000)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.05)
    p.set_defaults(func=cmd_train_calibrator)

    p = sub.add_parser("spaces", help="list feature spaces and whether each is ready")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_spaces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user mistakes print one line on stderr and exit 2; Ctrl-C exits 130 (work so far is kept)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AttributionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is kept; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
