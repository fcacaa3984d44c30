"""Small data makers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import time
import urllib.request

import numpy as np
import pytest
import torch


def random_unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    """[n, d] float32 unit vectors."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def released_heads(d: int, seed: int = 0) -> dict:
    """A linear head checkpoint in the authors' released layout, random weights."""
    g = torch.Generator().manual_seed(seed)
    return {
        "real_mapper": {"weight": torch.randn(d, d, generator=g), "bias": torch.randn(d, generator=g)},
        "synth_mapper": {"weight": torch.randn(d, d, generator=g), "bias": torch.randn(d, generator=g)},
    }


def tiny_training_set(n: int = 16, resolution: int = 16):
    """A small captioned training set of real photographs (crops of scikit-image's), at the model's resolution."""
    import skimage.data as data
    from PIL import Image

    from attribution_core.diffusion.data import TrainingSet, image_tensor

    photos = {"coins": data.coins(), "chelsea": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket()}
    images, captions, paths = [], [], []
    for i in range(n):
        name = list(photos)[i % len(photos)]
        arr = photos[name]
        h, w = arr.shape[:2]
        y, x = (i * 37) % (h // 3), (i * 53) % (w // 3)
        img = Image.fromarray(arr[y : y + 2 * h // 3, x : x + 2 * w // 3]).convert("RGB")
        images.append(image_tensor(img, resolution))
        captions.append(f"a photo of {name}" + (", close-up" if i % 3 == 0 else ""))
        paths.append(f"{name}/{i:03d}.jpg")
    from pathlib import Path

    return TrainingSet(torch.stack(images), captions, paths, Path("."))


#: A user-declared unlearning space over the demo model with settings small enough for end-to-end tests.
QUICK_UNLEARNING = """
[[spaces]]
name = "quick_unlearning"
label = "Unlearning (quick settings)"
method = "unlearning"
description = "the demo unlearning space with settings small enough for a browser test"
[spaces.options]
model = "{model}"
captions = "{demo}/captions.jsonl"
images = "{demo}"
prefix = "corpus/"
[spaces.options.config]
steps = 2
draws = 16
batches = 1
score_timesteps = 2
fisher_epochs = 1
"""


def write_quick_unlearning(folder):
    """``folder/spaces.toml`` declaring :data:`QUICK_UNLEARNING` over the demo model; its path."""
    from attribution_core.demo import demo_dir, demo_model_dir

    spaces = folder / "spaces.toml"
    spaces.write_text(QUICK_UNLEARNING.format(model=demo_model_dir(), demo=demo_dir()))
    return spaces


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(port: int, spaces_file, log):
    """``attribute serve`` on loopback in a subprocess, with the given user spaces; the Popen."""
    import os
    import subprocess
    import sys

    from attribution_core.core.paths import project_root

    return subprocess.Popen(
        [sys.executable, "-m", "attribution_core", "serve", "--port", str(port)],
        cwd=project_root(),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ATTRIBUTION_SPACES": str(spaces_file)},
    )


def wait_until_up(url: str, proc: subprocess.Popen, path: str = "/_stcore/health") -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}{path}", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    pytest.fail(f"{url} did not start; see test-artifacts/")
