"""Contract tests generated from the registries (timm's way): every registered index kind, head type and attribution
method is listed when the tests are collected and held to the same contract, so a new part is tested the moment it
registers (a plug-in's too, when ``$ATTRIBUTION_PLUGINS`` names it for the run).

- index kinds, against ``flat`` on a seeded synthetic store: the top 10 (identical for exact kinds, a recall bound for
  approximate ones), exact listed scores, influence + remainder = 1, a batch answered as one query at a time, a saved
  index reused, then rebuilt when the store changes, query-time parameters never rebuilding, declared devices;
- heads: created, given random weights, saved and loaded: the same type, fingerprint and unit-norm outputs;
- methods, each on a tiny space made here from files in the repository (no download): k clamped to the training set,
  influence + remainder = 1, ``scores`` of shape [nq, N] agreeing with the listed scores, a set cancel flag raising
  ``Cancelled``, results kept field for field through ``results_to_jsonl``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attribution_core.attribute.calibration import Calibrator
from attribution_core.attribute.interface import Attributor
from attribution_core.attribute.results import AttributionResult, results_to_jsonl
from attribution_core.attribute.spaces import SpaceSpec
from attribution_core.core.paths import project_root
from attribution_core.core.progress import Cancelled
from attribution_core.data.store import FeatureStore, write_store
from attribution_core.data.synthetic import clustered_features, perturbed
from attribution_core.heads import Heads, create_heads, list_head_types, load_heads, save_heads
from attribution_core.index import IndexKind, get_index_kind, list_index_kinds, load_index
from attribution_core.registry import all_spaces, create_attributor, list_methods, method_class

from .helpers import released_heads

# ---------------------------------------------------------------------------------------------------------------
# index kinds
# ---------------------------------------------------------------------------------------------------------------

INDEX_KINDS = list_index_kinds()

#: A few thousand clustered rows of small dimension: every build takes about a second at most.
N_ROWS, DIM, TOP = 4000, 32, 10
CALIBRATOR = Calibrator(16.1587, -38.5)  # the released CLIP calibrator: mass within ~0.2 cosine of the best

#: Build parameters for kinds whose defaults do not fit a store this small; every other kind is built with its own
#: defaults. ivfpq is made for stores larger than memory: it has no default factory below 39 × 256 = 9,984 rows, and
#: its 8-bit PQ codebooks take ~10 s to train here; 32 lists and 16 sub-quantisers of 4 bits (16 centroids each) train
#: on these rows in about a second (FAISS wants 39 training rows per centroid).
SMALL_STORE_PARAMS: dict[str, dict] = {"ivfpq": {"factory": "IVF32,PQ16x4"}}

#: Mean recall@10 against flat an approximate kind must reach at its declared defaults. The top 10 of a query near
#: the data lie in the one or two clusters nearest to it, which every default reaches (ivf probes 16 of its ~100
#: lists, nearest first; hnsw keeps efSearch = 128 ≥ 12·k candidates; ivfpq rescores rerank = 10·k candidates
#: exactly): measured 0.98–1.0 here. 0.9 leaves room for near-ties at the 10th score, not for a kind that misses
#: whole clusters or ranks by its approximate codes.
APPROX_RECALL = 0.9


def declares_exact(kind: type[IndexKind]) -> bool:
    """Whether a kind promises the flat scan's answers: an ``exact`` flag when it has one, else exhaustive kinds and
    those whose summary says "(exact" (how the registry declares it today: flat, sq8, fp16)."""
    flag = getattr(kind, "exact", None)
    if isinstance(flag, bool):
        return flag
    return kind.exhaustive or "(exact" in kind.summary


@dataclass
class IndexData:
    folder: Path
    xb: np.ndarray  # raw store rows [N, d]
    heads: Heads
    mapped: np.ndarray  # the rows under the real head [N, d], unit norm
    queries: np.ndarray  # synth-head queries near the data [nq, d]
    store: FeatureStore
    built: dict  # kind -> its loaded AttributionIndex (each built once)

    def index(self, kind: str):
        if kind not in self.built:
            params = SMALL_STORE_PARAMS.get(kind)
            self.built[kind], _ = load_index(self.store, self.heads, kind, progress=False, device="cpu", params=params)
        return self.built[kind]


def synthetic_store(folder: Path, xb: np.ndarray) -> FeatureStore:
    return write_store(folder / "store", xb, [f"{i}.jpg" for i in range(len(xb))], "test")


def random_linear_heads(folder: Path) -> Heads:
    """Random linear heads in the released layout: the index holds rows mapped through a real head, not the raw
    features (an index that skipped the head would fail every check below)."""
    path = folder / "heads.pth"
    torch.save(released_heads(DIM, seed=7), path)
    return load_heads(path, DIM)


@pytest.fixture(scope="module")
def index_data(tmp_path_factory) -> IndexData:
    folder = tmp_path_factory.mktemp("contract_index")
    xb = clustered_features(N_ROWS, DIM, n_clusters=50, seed=0, spread=0.5)
    heads = random_linear_heads(folder)
    rows = np.random.default_rng(1).integers(0, N_ROWS, 20)
    queries = heads.synth_head.map_numpy(perturbed(xb[rows], noise=0.3, seed=2))
    return IndexData(folder, xb, heads, heads.real_head.map_numpy(xb), queries, synthetic_store(folder, xb), {})


def brute_force_top(mapped: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = mapped @ q
    return np.lexsort((np.arange(len(scores)), -scores))[:k]  # ties: the lower row first, as every kind lists them


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_index_kind_finds_the_flat_top_10_with_exact_scores_and_whole_influence(index_data, kind) -> None:
    """Exact kinds list the flat scan's rows (flat itself: numpy's), approximate ones recall at least APPROX_RECALL
    of them; every kind lists its rows' exact cosines, best first, and influence + remainder = 1."""
    index = index_data.index(kind)
    flat = index_data.index("flat")
    assert index.kind == kind and index.ntotal == N_ROWS
    recalls = []
    for q in index_data.queries:
        got, want = index.search(q, TOP, CALIBRATOR), flat.search(q, TOP, CALIBRATOR)
        if kind == "flat":
            np.testing.assert_array_equal(got.I, brute_force_top(index_data.mapped, q, TOP))
        assert len(got.I) == TOP and len(set(got.I.tolist())) == TOP
        np.testing.assert_allclose(got.D, index_data.mapped[got.I] @ q, atol=1e-5)  # exact, whatever the codes
        assert np.all(np.diff(got.D) <= 1e-6), "best first"
        assert np.all(got.influence >= 0) and got.remaining_influence >= 0
        assert got.influence.sum() + got.remaining_influence == pytest.approx(1.0, abs=1e-6)
        if declares_exact(get_index_kind(kind)):
            np.testing.assert_array_equal(got.I, want.I)
            np.testing.assert_allclose(got.influence, want.influence, rtol=1e-4, atol=1e-9)
            assert got.mass_count == want.mass_count
        recalls.append(len(set(got.I.tolist()) & set(want.I.tolist())) / TOP)
    assert np.mean(recalls) >= APPROX_RECALL, f"{kind}: recall@{TOP} {np.mean(recalls):.3f}"


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_index_kind_answers_a_batch_as_it_answers_one_query_at_a_time(index_data, kind) -> None:
    index = index_data.index(kind)
    queries = index_data.queries[:7]
    ks = [1, 5, 10, 50, 100, 3, 20]
    batch = index.search_many(queries, ks, CALIBRATOR)
    for q, k, got in zip(queries, ks, batch, strict=True):
        alone = index.search(q, k, CALIBRATOR)
        np.testing.assert_array_equal(got.I, alone.I)
        np.testing.assert_allclose(got.influence, alone.influence, rtol=1e-4, atol=1e-9)  # GEMM vs GEMV rounding
        assert got.remaining_influence == pytest.approx(alone.remaining_influence, abs=1e-6)
        assert len(got.I) == k


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_index_kind_is_reused_then_rebuilt_when_the_store_changes(tmp_path, caplog, index_data, kind) -> None:
    """A saved index passes its own checks (record and spot check) and is reused, also when a query-time parameter
    changes; when a row of the store's features is rewritten in place, the saved index is stale (its record names
    the old checksum): rebuilt with the parameters first asked for, recorded with the new store, finding the new
    row."""
    store = synthetic_store(tmp_path, index_data.xb)
    heads, params = index_data.heads, SMALL_STORE_PARAMS.get(kind, {})
    first, built = load_index(store, heads, kind, progress=False, device="cpu", params=params)
    assert built
    _, built = load_index(store, heads, kind, progress=False, device="cpu")
    assert not built, "an up-to-date index is reused"
    query_time = {
        p.name: first.loaded.params[p.name] + 1
        for p in get_index_kind(kind).query_params()
        if p.type is int and isinstance(first.loaded.params.get(p.name), int)
    }
    again, built = load_index(store, heads, kind, progress=False, device="cpu", params={**params, **query_time})
    assert not built, f"query-time parameters {sorted(query_time)} rebuilt the index"
    assert all(again.loaded.params[name] == value for name, value in query_time.items())
    feats = np.load(store.path / "feats.npy", mmap_mode="r+")
    feats[0] = -feats[0]  # row 0: in every spot check (the first row always is)
    feats.flush()
    del feats
    os.utime(store.path / "feats.npy", ns=(0, 10**18))  # a new stamp, however coarse the file system's clock
    changed = FeatureStore.open(store.path)
    assert changed.checksum != store.checksum and first.path.is_file(), "the old index is still there"
    index, built = load_index(changed, heads, kind, progress=False, device="cpu")
    assert built, "a changed store rebuilds the index"
    assert "store_checksum differs" in caplog.text, "rebuilt because it was stale, not because it was missing"
    assert index.meta.store_checksum == changed.checksum
    assert all(index.meta.params[name] == value for name, value in params.items()), "rebuilt as first asked"
    q = heads.real_head.map_numpy(-index_data.xb[:1])[0]
    assert index.search(q, 1, CALIBRATOR).I[0] == 0


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_index_kind_declares_what_it_runs_on_and_takes(index_data, kind) -> None:
    """Every kind searches on the CPU (the fallback for any device asked for), declares only real torch device
    types, and its defaults are parameters it declares; built for the CPU, it searches there."""
    cls = get_index_kind(kind)
    assert cls.name == kind and cls.summary
    assert "cpu" in cls.devices
    for device in cls.devices:
        assert torch.device(device).type == device
    declared = {p.name for p in cls.params}
    assert set(cls.default_params(N_ROWS, DIM)) <= declared
    loaded = index_data.index(kind).loaded
    assert loaded.device is None or loaded.device.type == "cpu"


# ---------------------------------------------------------------------------------------------------------------
# heads
# ---------------------------------------------------------------------------------------------------------------

HEAD_TYPES = list_head_types()
HEAD_IN = 24


def randomised(heads: Heads, seed: int) -> Heads:
    """``heads`` with every weight and statistic moved off its initial value (real and synth differently), so that a
    loader that drops, swaps or re-initialises anything gives other outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in (heads.real_head, heads.synth_head):
            for p in head.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            for name, b in head.named_buffers():
                if b.is_floating_point():
                    b.copy_(
                        torch.rand(b.shape, generator=g) + 0.5 if "var" in name else torch.randn(b.shape, generator=g)
                    )
    return heads.eval()


@pytest.mark.parametrize("kind", HEAD_TYPES)
def test_head_type_survives_save_and_load(tmp_path, kind) -> None:
    heads = randomised(create_heads(kind, HEAD_IN), seed=3)
    x = torch.randn(64, HEAD_IN, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        real, synth = heads.real_head(x), heads.synth_head(x)
    assert real.shape == (64, heads.dim)
    assert not torch.allclose(real, synth, atol=1e-3), "real and synth heads differ"
    save_heads(heads, tmp_path / "heads.pth")
    loaded = load_heads(tmp_path / "heads.pth", HEAD_IN)
    assert loaded.kind == kind and loaded.dim == heads.dim and loaded.in_dim == HEAD_IN
    assert loaded.fingerprint() == heads.fingerprint()
    with torch.inference_mode():
        torch.testing.assert_close(loaded.real_head(x), real, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(loaded.synth_head(x), synth, atol=1e-6, rtol=1e-5)
    mapped = loaded.real_head.map_numpy(x.numpy())
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(mapped, real.numpy(), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------------------------------------------

METHODS = list_methods()
#: Committed with the package: the demo diffusion model (16 px, 4.4 MB) and the distilled student trained for it.
DEMO_MODEL = project_root() / "attribution_core" / "demo" / "model"
DEMO_STUDENT = project_root() / "attribution_core" / "demo" / "distilled"
N_TRAIN = 40  # training images of a feature-like tiny space
QUICK_UNLEARNING = {"steps": 1, "draws": 4, "batches": 1, "score_timesteps": 1, "fisher_epochs": 1, "device": "cpu"}


def _needs(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"needs the committed demo parts: {', '.join(missing)} missing")


def _unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def feature_space(folder: Path) -> SpaceSpec:
    """Pixel features (no weights) of random rows: the feature method end to end, index and calibrator included."""
    feats = np.random.default_rng(0).random((N_TRAIN, 768), dtype=np.float32)
    captions = {f"{i}.jpg": f"image {i}" for i in range(0, N_TRAIN, 2)}  # some rows captioned, some not
    store = write_store(folder / "store", feats, [f"{i}.jpg" for i in range(N_TRAIN)], "pixel", captions=captions)
    return SpaceSpec(name="contract_feature", label="contract feature", backbone="pixel", store=store.path)


def unlearning_space(folder: Path) -> SpaceSpec:
    """The committed demo model over 6 random 16-px training images, with the quickest settings (a copy of the model,
    so that nothing is written beside the package's)."""
    _needs(DEMO_MODEL / "model_index.json")
    shutil.copytree(DEMO_MODEL, folder / "model", ignore=shutil.ignore_patterns("checkpoint"))
    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    lines = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "images" / f"{i}.png")
        lines.append(json.dumps({"path": f"{i}.png", "caption": f"a photo of thing {i}"}))
    (folder / "captions.jsonl").write_text("\n".join(lines))
    options = {"model": str(folder / "model"), "captions": str(folder / "captions.jsonl"),
               "images": str(folder / "images"), "config": QUICK_UNLEARNING}  # fmt: skip
    return SpaceSpec(name="contract_unlearning", label="contract unlearning", method="unlearning", options=options)


def distilled_space(folder: Path) -> SpaceSpec:
    """The committed demo student and model (its text encoder reads prompts) over random student embeddings of
    N_TRAIN training images."""
    _needs(DEMO_MODEL / "model_index.json", DEMO_STUDENT / "student.json")
    meta = json.loads((DEMO_STUDENT / "student.json").read_text())
    dim, backbone = int(meta["student"]["embedding"]), meta["backbone"]
    store = write_store(
        folder / "store", _unit_rows(N_TRAIN, dim, 0), [f"{i}.png" for i in range(N_TRAIN)], f"student:{backbone}"
    )
    options = {"student": str(DEMO_STUDENT), "model": str(DEMO_MODEL)}
    return SpaceSpec(
        name="contract_distilled", label="contract distilled", method="distilled", backbone=backbone,
        store=store.path, options=options,
    )  # fmt: skip


#: How to make a tiny space of each built-in method. A method without one here is exercised on a ready registered
#: space of its own that answers interactively (a plug-in's example space); without either, its tests fail.
TINY_SPACES: dict[str, Callable[[Path], SpaceSpec]] = {
    "feature": feature_space,
    "unlearning": unlearning_space,
    "distilled": distilled_space,
}


def registered_space(method: str) -> SpaceSpec:
    from attribution_core.registry import space_status

    cls = method_class(method)
    for spec in all_spaces():
        if spec.method == method and cls.capabilities.interactive and space_status(spec).ready:
            return spec
    pytest.fail(
        f"method {method!r} is registered but the contract tests cannot exercise it: add a maker of a tiny space to "
        "TINY_SPACES in tests/test_contract.py (or register a ready, interactive example space)"
    )


@dataclass
class MethodCase:
    method: str
    spec: SpaceSpec
    attributor: Attributor
    images: list[Image.Image]
    prompts: list[str | None]
    ks: list[int]
    results: list[AttributionResult]  # attribute(images, ks, prompts)
    scores: np.ndarray  # scores(images, prompts)


@pytest.fixture(scope="module", params=METHODS)
def method_case(request, tmp_path_factory):
    method = request.param
    folder = tmp_path_factory.mktemp(f"contract_{method}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATTRIBUTION_HOME", str(folder))  # caches (unlearning's Fisher and losses) go here, not the project
        mp.setenv("ATTRIBUTION_CACHE", str(folder / "cache"))
        make = TINY_SPACES.get(method)
        spec = make(folder) if make is not None else registered_space(method)
        attributor = create_attributor(spec, device="cpu", progress=False)
        rng = np.random.default_rng(5)
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
        prompts = ["a photo of thing 1", "a photo of thing 4"]  # every method gets one; those that read none ignore it
        n = len(attributor)
        ks = [n + 7, max(1, min(3, n - 1))]  # beyond the training set (clamped), and within it
        results = attributor.attribute(images, ks, prompts=prompts, cancel=threading.Event())  # a flag never set
        scores = attributor.scores(images, prompts=prompts, cancel=threading.Event())
        yield MethodCase(method, spec, attributor, images, prompts, ks, results, scores)


def test_k_beyond_the_training_set_is_clamped_to_it(method_case) -> None:
    case = method_case
    n = len(case.attributor)
    assert len(case.results) == len(case.images)
    for result, k in zip(case.results, case.ks, strict=True):
        scored = int(result.extras.get("scored", n))  # a method that scores only candidates says how many
        listed = [a.row for a in result.results]
        assert len(listed) == min(k, scored, n), (k, n, scored)
        assert [a.rank for a in result.results] == list(range(1, len(listed) + 1))
        assert len(set(listed)) == len(listed) and all(0 <= r < n for r in listed)
        assert result.method == case.method and result.space == case.spec.name
    first = case.results[0]
    if "scored" not in first.extras:
        assert sorted(a.row for a in first.results) == list(range(n)), "k > N lists every training image once"


def test_influence_of_the_listed_plus_the_remainder_is_one(method_case) -> None:
    for result in method_case.results:
        shares = np.array([a.influence for a in result.results])
        assert np.all(shares >= 0) and result.remaining_influence >= 0
        assert shares.sum() + result.remaining_influence == pytest.approx(1.0, abs=1e-6)
        scores = [a.score for a in result.results]
        assert scores == sorted(scores, reverse=True), "best first"
    everything = method_case.results[0]  # k > N: every training image listed, nothing left outside
    if "scored" not in everything.extras:
        assert everything.remaining_influence == pytest.approx(0.0, abs=1e-6)


def test_scores_cover_every_training_image_for_every_query(method_case) -> None:
    """``scores`` is [nq, N], row i for query i: the scores ``attribute`` listed for it, at the listed rows."""
    case = method_case
    assert case.scores.shape == (len(case.images), len(case.attributor))
    for result, row_scores in zip(case.results, case.scores, strict=True):
        rows = [a.row for a in result.results]
        listed = [a.score for a in result.results]
        np.testing.assert_allclose(row_scores[rows], listed, rtol=1e-5, atol=1e-6)
        assert np.isfinite(row_scores[rows]).all()
    if len(case.attributor) > 1:
        assert not np.allclose(case.scores[0], case.scores[1]), "the two queries got the same scores"


@pytest.mark.parametrize("call", ["attribute", "scores"])
def test_a_cancel_flag_set_before_the_call_stops_it(method_case, call) -> None:
    case = method_case
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        if call == "attribute":
            case.attributor.attribute(case.images, 5, prompts=case.prompts, cancel=cancel)
        else:
            case.attributor.scores(case.images, prompts=case.prompts, cancel=cancel)


def test_results_survive_a_json_round_trip(method_case) -> None:
    text = results_to_jsonl(method_case.results)
    lines = text.splitlines()
    assert len(lines) == len(method_case.results)
    for line, original in zip(lines, method_case.results, strict=True):
        obj = json.loads(line)
        back = AttributionResult.from_dict(obj)
        for name in ("query", "space", "method", "score_kind", "remaining_influence", "mass_count", "timings_ms"):
            assert getattr(back, name) == getattr(original, name), name
        assert back.extras == json.loads(json.dumps(original.extras))
        assert back.describe() == original.describe()
        assert len(back.results) == len(original.results)
        for b, a in zip(back.results, original.results, strict=True):
            assert (b.rank, b.path, b.row, b.caption, b.url, b.influence) == (
                a.rank, a.path, a.row, a.caption, a.url, a.influence,
            )  # fmt: skip
            assert b.score == pytest.approx(a.score, abs=5e-7)  # written to 6 decimals
        assert json.loads(results_to_jsonl([back])) == obj, "a result read back writes the same JSON"
