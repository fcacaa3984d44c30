"""Training: a known head is recovered, checkpoints round-trip, the calibrator recovers a known temperature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution_core.attribute.calibration import Calibrator, soft_influence
from attribution_core.data.synthetic import perturbed
from attribution_core.features.train import FeatureSplit, HeadTrainingConfig, fit_calibrator, split_metrics, train_heads
from attribution_core.heads import load_heads, save_heads

from .helpers import random_unit


def rotated_problem(n_models: int, d: int, seed: int) -> tuple[FeatureSplit, np.ndarray]:
    """Synthesized images are a fixed rotation R of their exemplars (plus noise): identity heads cannot see the
    match; a synth head that learns R^T can. Returns the split and R."""
    rng = np.random.default_rng(seed)
    rot = np.linalg.qr(np.random.default_rng(99).standard_normal((d, d)))[0].astype(np.float32)
    ex, em, q, qm = [], [], [], []
    for m in range(n_models):
        base = random_unit(1, d, seed=seed * 1000 + m)  # a model's exemplars: views of one object
        e = perturbed(np.repeat(base, int(rng.integers(1, 4)), 0), 0.3, seed=seed * 1000 + m)
        ex.append(e)
        em += [m] * len(e)
        for _ in range(4):
            src = e[rng.integers(len(e))]
            q.append(rot @ src + 0.04 * rng.standard_normal(d).astype(np.float32))
            qm.append(m)
    return FeatureSplit(np.stack(q), np.array(qm), np.concatenate(ex), np.array(em)), rot


def test_training_recovers_a_known_head() -> None:
    d = 24
    train, rot = rotated_problem(60, d, seed=1)
    val, _ = rotated_problem(20, d, seed=2)
    corpus = random_unit(2000, d, seed=3)
    config = HeadTrainingConfig(temperature=0.1, lr=0.01, negatives=512, max_epochs=40, patience=10, seed=0)
    heads, report = train_heads(train, val, corpus, config, progress=False)
    before, after = report.history[0], report.best
    losses = [h["loss"] for h in report.history[1:]]
    assert losses[-1] < losses[0] * 0.7, "loss goes down"
    assert before["val_recall@10"] < 0.3 and after["val_recall@10"] > 0.9, (before, after)
    assert after["val_mAP"] > before["val_mAP"] + 0.5
    assert split_metrics(heads, val, corpus)["mAP"] == pytest.approx(after["val_mAP"])
    # the learnt synth head undoes the rotation (up to the real head): synth(R e) lines up with real(e)
    e = random_unit(5, d, seed=7)
    with torch.inference_mode():
        cos = (heads.synth_head(torch.from_numpy(e @ rot.T)) * heads.real_head(torch.from_numpy(e))).sum(1)
    assert float(cos.mean()) > 0.9


def test_training_is_deterministic_with_a_seed() -> None:
    train, _ = rotated_problem(20, 16, seed=1)
    val, _ = rotated_problem(8, 16, seed=2)
    corpus = random_unit(300, 16, seed=3)
    config = HeadTrainingConfig(max_epochs=3, patience=5, negatives=100, seed=5)
    a, _ = train_heads(train, val, corpus, config, progress=False)
    b, _ = train_heads(train, val, corpus, config, progress=False)
    assert a.fingerprint() == b.fingerprint()


def test_trained_checkpoint_round_trips_in_the_released_format(tmp_path) -> None:
    train, _ = rotated_problem(10, 16, seed=1)
    val, _ = rotated_problem(5, 16, seed=2)
    heads, _ = train_heads(train, val, random_unit(200, 16), HeadTrainingConfig(max_epochs=2), progress=False)
    save_heads(heads, tmp_path / "tuned.pth")
    raw = torch.load(tmp_path / "tuned.pth", weights_only=True)
    assert set(raw) == {"real_mapper", "synth_mapper"}
    assert set(raw["real_mapper"]) == {"weight", "bias"} and raw["real_mapper"]["weight"].shape == (16, 16)
    loaded = load_heads(tmp_path / "tuned.pth", 16)
    x = torch.randn(4, 16)
    torch.testing.assert_close(loaded.synth_head(x), heads.synth_head(x))
    assert loaded.fingerprint() == heads.fingerprint()


@pytest.mark.parametrize("true_inv_tau,true_bias,rel", [(16.1587, -38.5, 0.05)])  # the released CLIP one
def test_calibrator_fit_recovers_a_known_temperature(true_inv_tau: float, true_bias: float, rel: float) -> None:
    """Data drawn from a known calibrator (with a negative bias, like the released ones: the loss's softplus
    floors every candidate's mass at about ln 2 / 100 when b = 0, which biases any fit)."""
    rng = np.random.default_rng(0)
    truth = Calibrator(true_inv_tau, true_bias)
    rows = []
    for _ in range(800):
        s = np.clip(rng.normal(0.5, 0.12, 300), -1, 1)
        gt = rng.choice(len(s), p=soft_influence(s, truth))  # the exemplar drawn with the true calibration
        rows.append(np.concatenate([[s[gt]], np.delete(s, gt)]))
    fitted = fit_calibrator(np.stack(rows), np.ones(len(rows)), steps=1500, lr=0.05, progress=False)
    assert fitted.inv_tau == pytest.approx(true_inv_tau, rel=rel)
    assert fitted.b == pytest.approx(truth.b, abs=0.025)


def test_train_commands_on_the_demo(demo_bundle, tmp_path) -> None:
    import json
    import subprocess
    import sys

    from attribution_core.attribute.calibration import load_calibrator
    from attribution_core.core.paths import project_root

    common = ["--backbone", "efficientnet_lite0", "--feats", "feats/demo/efficientnet_lite0/corpus"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "attribution_core",
            "-q",
            "train-head",
            "--train",
            "dataset/json/train_demo.json",
            "--val",
            "dataset/json/val_demo.json",
            *common,
            "--epochs",
            "4",
            "--out",
            str(tmp_path / "heads.pth"),
        ],
        capture_output=True,
        text=True,
        cwd=project_root(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "validation recall@10" in out.stdout
    assert load_heads(tmp_path / "heads.pth", 1280).dim == 1280
    history = json.loads((tmp_path / "heads.log.json").read_text())
    assert [h["epoch"] for h in history][:2] == [0, 1]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "attribution_core",
            "-q",
            "train-calibrator",
            "--val",
            "dataset/json/val_demo.json",
            *common,
            "--mapper",
            str(tmp_path / "heads.pth"),
            "--steps",
            "300",
            "--out",
            str(tmp_path / "cal.pth"),
        ],
        capture_output=True,
        text=True,
        cwd=project_root(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert load_calibrator(tmp_path / "cal.pth").inv_tau > 1.0


@pytest.mark.parametrize("head", ["mlp", "channel"])
def test_other_head_types_train_and_improve(head: str) -> None:
    """train-head --head mlp|channel: the same loop trains the authors' other head types."""
    scale = np.exp(np.random.default_rng(5).uniform(-2, 2, 32)).astype(np.float32)  # a per-channel distortion

    def make_split(seed: int) -> FeatureSplit:
        split, _ = rotated_problem(12, 32, seed)
        ex = split.exemplars[[int(np.flatnonzero(split.exemplar_model == m)[0]) for m in split.query_model]]
        split.queries = (ex * scale + 0.02 * random_unit(len(ex), 32, seed=seed + 50)).astype(np.float32)
        return split

    train, val = make_split(0), make_split(1)
    corpus = random_unit(2000, 32, seed=3)
    config = HeadTrainingConfig(head=head, mlp_hidden=64, mlp_out=32, max_epochs=15, lr=3e-3, seed=0)
    heads, report = train_heads(train, val, corpus, config, progress=False)
    assert heads.kind == head and heads.dim == 32
    assert report.best["val_mAP"] > report.history[0]["val_mAP"]


def test_head_training_logs_no_nan_before_its_first_step(caplog) -> None:
    """The first line head training logs (the identity heads' validation, before any step) shows no 'loss nan'."""
    import logging

    caplog.set_level(logging.INFO, logger="attribution_core.features.train.heads")
    train, _ = rotated_problem(10, 16, seed=1)
    val, _ = rotated_problem(5, 16, seed=2)
    config = HeadTrainingConfig(negatives=64, max_epochs=2, patience=2, seed=0)
    train_heads(train, val, random_unit(200, 16, seed=3), config, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "attribution_core.features.train.heads"]
    assert lines[0].startswith("before training") and not any("nan" in line for line in lines), lines
