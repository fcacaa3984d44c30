"""Prompts -> token ids -> text features for cross-attention: open_clip's BPE tokenizer and a small transformer.

The tokenizer is real (open_clip ships its BPE vocabulary inside the package, so it works offline on any text).
Its 49,408-entry vocabulary is far larger than what a demo model ever sees, so the model keeps a *compact
vocabulary*: the BPE ids that occur in its training captions (and tokens added by customisation, such as
``<v1>``), each mapped to a row of a small embedding table; any other id maps to one "unknown" row. The compact
vocabulary is saved with the model, so a prompt always maps to the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from open_clip.tokenizer import SimpleTokenizer

PAD, UNKNOWN = 0, 1  # compact ids reserved for padding and for BPE ids the model never saw


class PromptTokenizer:
    """Text -> compact token ids [B, context_length]; BPE by open_clip, then the model's compact vocabulary."""

    def __init__(self, context_length: int, bpe_ids: Sequence[int] = (), added: Sequence[str] = ()):
        self.context_length = context_length
        self._bpe = SimpleTokenizer(context_length=context_length)
        self.bpe_ids = list(dict.fromkeys([self._bpe.sot_token_id, self._bpe.eot_token_id, *bpe_ids]))
        self.added = list(added)  # whole-word tokens added after training (customisation), e.g. "<v1>"
        self._compact = {b: i + 2 for i, b in enumerate(self.bpe_ids)}

    @property
    def vocab_size(self) -> int:
        return 2 + len(self.bpe_ids) + len(self.added)

    def _bpe_of(self, text: str) -> list[int | str]:
        """BPE ids of ``text``, with added tokens kept whole (as strings)."""
        out: list[int | str] = []
        for part in text.split():
            word = part.strip(",.;:")
            if word in self.added:
                out.append(word)
            else:
                out.extend(self._bpe.encode(part))
        return out

    def learn(self, captions: Iterable[str]) -> None:
        """Add every BPE id of ``captions`` to the compact vocabulary (done once, before training)."""
        for caption in captions:
            for b in self._bpe_of(caption):
                if isinstance(b, int) and b not in self._compact:
                    self._compact[b] = len(self.bpe_ids) + 2
                    self.bpe_ids.append(b)

    def add_token(self, token: str) -> int:
        """A new whole-word token (customisation's modifier, e.g. ``<v1>``); returns its compact id."""
        if token not in self.added:
            self.added.append(token)
        return 2 + len(self.bpe_ids) + self.added.index(token)

    def truncates(self, text: str) -> bool:
        """Whether ``text`` has more tokens than the model reads (the rest is cut off)."""
        return len(self._bpe_of(text)) > self.context_length - 2

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Compact ids [B, context_length]: start, the prompt's tokens (truncated), end, padding."""
        out = torch.full((len(texts), self.context_length), PAD, dtype=torch.long)
        sot, eot = self._compact[self._bpe.sot_token_id], self._compact[self._bpe.eot_token_id]
        for i, text in enumerate(texts):
            ids = [
                2 + len(self.bpe_ids) + self.added.index(b) if isinstance(b, str) else self._compact.get(b, UNKNOWN)
                for b in self._bpe_of(text)
            ][: self.context_length - 2]
            row = [sot, *ids, eot]
            out[i, : len(row)] = torch.tensor(row)
        return out

    def state(self) -> dict:
        return {"context_length": self.context_length, "bpe_ids": self.bpe_ids, "added": self.added}

    @classmethod
    def from_state(cls, state: dict) -> PromptTokenizer:
        return cls(int(state["context_length"]), [int(b) for b in state["bpe_ids"]], list(state.get("added", [])))


class TextEncoder(torch.nn.Module):
    """Token ids [B, L] -> text features [B, L, dim]: embeddings + positions, a pre-norm transformer, LayerNorm."""

    def __init__(self, vocab_size: int, dim: int, layers: int, heads: int, context_length: int):
        super().__init__()
        self.token_embedding = torch.nn.Embedding(vocab_size, dim)
        self.position_embedding = torch.nn.Parameter(torch.zeros(context_length, dim))
        layer = torch.nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_norm = torch.nn.LayerNorm(dim)
        torch.nn.init.normal_(self.token_embedding.weight, std=0.02)
        torch.nn.init.normal_(self.position_embedding, std=0.01)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        x = self.transformer(x, src_key_padding_mask=ids == PAD)
        return self.final_norm(x)

    def grow_vocabulary(self, vocab_size: int, init_from: int | None = None) -> None:
        """Add embedding rows (new tokens), each initialised as a copy of row ``init_from`` (or small noise)."""
        old = self.token_embedding
        if vocab_size <= old.num_embeddings:
            return
        new = torch.nn.Embedding(vocab_size, old.embedding_dim)
        with torch.no_grad():
            new.weight[: old.num_embeddings] = old.weight
            extra = new.weight[old.num_embeddings :]
            if init_from is not None:
                extra.copy_(old.weight[init_from].expand_as(extra))
            else:
                torch.nn.init.normal_(extra, std=0.02)
        self.token_embedding = new
