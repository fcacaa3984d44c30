"""Checkpoints: pickles that would run code are refused without running it; bad files give one clear line."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from attribution_core.core.checkpoints import load_checkpoint
from attribution_core.core.errors import CheckpointError


class _RunsCode:
    """Unpickling this calls os.system: a classic malicious checkpoint."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_without_running_code(tmp_path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"real_mapper": _RunsCode(str(marker))}, evil)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil, "head checkpoint")
    assert "evil.pth" in str(err.value) and "refused" in str(err.value)
    assert not marker.exists(), "the payload ran"
    # and the same file *would* run code with a plain unpickler: the test is meaningful
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_RunsCode(str(marker))))
    pickle.loads(raw.read_bytes())
    assert marker.exists()


def test_missing_and_garbage_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pth: head checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth", "head checkpoint")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth: not a readable PyTorch"):
        load_checkpoint(junk)


def test_plain_tensor_checkpoint_loads(tmp_path) -> None:
    torch.save({"a": torch.ones(3), "nested": {"b": torch.zeros(2)}}, tmp_path / "ok.pth")
    state = load_checkpoint(tmp_path / "ok.pth")
    assert state["a"].sum() == 3 and state["nested"]["b"].shape == (2,)
