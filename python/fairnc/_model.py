"""Loading a model and reading its hidden states."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from . import _fairnc

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class HiddenStates:
    """Last-layer states of a list of texts, padded to the longest: the arrays ``fairnc hidden``
    writes, by the same names."""

    hidden: np.ndarray
    """``float32 [N, T, D]``, zero past each text's length."""
    attention_mask: np.ndarray
    """``int64 [N, T]``: 1 on a text's tokens, 0 on padding."""
    input_ids: np.ndarray
    """``int64 [N, T]``: the token ids, the pad id on padding."""


def _array(raw: Any, dtype: Any) -> np.ndarray:
    data, shape = raw
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


class Model:
    """A loaded model (BERT, RoBERTa, DistilBERT or GPT-2 family). Create it with :func:`load`."""

    def __init__(self, native: _fairnc.Model):
        self._native = native

    @property
    def name(self) -> str:
        """The name it was loaded by (what results record)."""
        return self._native.name

    @property
    def seed(self) -> int:
        """The seed it was loaded with (a new LM head, dropout); stages default to it."""
        return self._native.seed

    @property
    def info(self) -> Dict[str, Any]:
        """What ``fairnc info --json`` prints: family, kind, parameters, vocabulary, shape, head."""
        return json.loads(self._native.info_json())

    def hidden(
        self,
        texts: Sequence[str],
        *,
        max_len: Optional[int] = None,
        truncate: bool = True,
        batch_size: int = 64,
        features: str = "hidden",
        progress: bool = True,
    ) -> HiddenStates:
        """Last-layer hidden states of ``texts`` (``features="head"``: their MLM head transform),
        bit for bit what ``fairnc hidden`` writes for the same texts and settings. Texts longer
        than ``max_len`` tokens (default: the position table) are cut, or refused with
        ``truncate=False``."""
        if isinstance(texts, str):
            raise TypeError("hidden: texts must be a list of strings, not one string")
        h, m, i = self._native.hidden(list(texts), max_len, truncate, batch_size, features, progress)
        return HiddenStates(_array(h, np.float32), _array(m, np.int64), _array(i, np.int64))

    def __repr__(self) -> str:
        return f"fairnc.Model({self.name!r}, seed={self.seed})"


def load(
    name_or_path: PathLike, seed: int = 0, *, progress: bool = True, device: str = "cpu", dtype: str = "f32"
) -> Model:
    """Load a model: ``"minilm"`` (the embedded default), ``"minilm-mlm"`` (built on first use),
    ``"hf:ORG/NAME"`` (a cached Hugging Face checkpoint), or a checkpoint directory.
    ``seed`` initialises a newly created LM head and dropout. ``device`` is ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` or ``"metal"`` (GPUs need a build with that feature); ``dtype``
    ``"f32"`` (default), ``"bf16"`` or ``"f16"`` keeps the parameters in that type (outputs stay
    float32; bf16 moves them by up to 3% of their largest value)."""
    return Model(_fairnc.load(os.fspath(name_or_path), seed, progress, device, dtype))
