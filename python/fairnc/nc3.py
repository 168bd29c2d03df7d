"""The NC3 regularizer of "Collapsed Language Models Promote Fairness" (ICLR 2025) for your own
training loop: the term ``fairnc debias --nc3`` adds, computed by the same Rust code.

While fine-tuning, keep running sums of the *detached* last-layer hidden states at the positions
of the fairness words, and add ``λ · std_c ⟨û_c, ŵ_c⟩``: the sample standard deviation, over the
classes seen so far, of the cosine between each class's centred mean û_c (centred on the
unweighted mean of the seen classes' means) and its row ŵ_c of the tied output embedding. The
means are constants, so the gradient reaches only those rows (and, through tying, the input
embeddings). With fewer than two classes seen the term is zero.

>>> from fairnc import nc3
>>> reg = nc3.Regularizer.from_words("gender", tokenizer="path/to/checkpoint")
>>> out = model(input_ids, attention_mask=mask, labels=labels, output_hidden_states=True)
>>> reg.observe(out.hidden_states[-1], input_ids, attention_mask=mask)
>>> loss = out.loss + 100 * reg.loss(model.get_output_embeddings().weight)
>>> loss.backward()

torch is optional: without it, :meth:`Regularizer.loss_and_grad` and :func:`loss_and_grad` give
the value and gradient as numpy arrays.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _fairnc
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ._model import Model

__all__ = ["Regularizer", "loss_and_grad"]

PathLike = Union[str, "os.PathLike[str]"]

_VARIANTS = ("std", "mean")


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fairnc.nc3: the differentiable loss needs torch: pip install fairnc[torch] "
            "(or use loss_and_grad for numpy arrays)"
        ) from e
    return torch


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _f64(x: Any, who: str, what: str, ndim: int) -> np.ndarray:
    """``x`` as a C-contiguous float64 array of ``ndim`` dimensions."""
    if _is_tensor(x):
        x = x.detach().to("cpu").double().numpy()
    a = np.asarray(x)
    if a.ndim != ndim:
        raise InputError(f"{who}: {what} must have {ndim} dimensions, not shape {tuple(a.shape)}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{who}: {what} must hold numbers, not {a.dtype}")
    return np.ascontiguousarray(a, dtype="<f8")


def _ids(x: Any, who: str, what: str, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """Token ids (or a mask) as a C-contiguous int64 ``[B, T]`` array."""
    if _is_tensor(x):
        x = x.detach().to("cpu").numpy()
    a = np.asarray(x)
    if a.ndim != 2:
        raise InputError(f"{who}: {what} must be [batch, length], not shape {tuple(a.shape)}")
    if shape is not None and a.shape != shape:
        raise InputError(f"{who}: {what} has shape {tuple(a.shape)}, not {shape} (the input_ids' shape)")
    if a.dtype == np.bool_:
        a = a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{who}: {what} must hold integers, not {a.dtype}")
    return np.ascontiguousarray(a, dtype="<i8")


def _from_bytes(raw: bytes, dtype: str, shape: Tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()


def loss_and_grad(means: Any, rows: Any, variant: str = "std") -> Tuple[float, np.ndarray]:
    """The NC3 term and its gradient for explicit class means and classifier rows.

    ``means`` and ``rows`` are ``[K, D]`` arrays (one row per class, K ≥ 2, every class counted
    as seen; numpy arrays or tensors). ``variant="std"``: the sample std (n − 1) of
    s_c = ⟨normalize(μ_c − μ_G), normalize(w_c)⟩ with μ_G the unweighted mean of the means (a
    class at μ_G has s_c = 0); ``"mean"``: −mean s_c. Returns (loss, gradient ``float64 [K, D]``
    in ``rows``). Raises :class:`fairnc.InputError` for shapes that disagree, fewer than two
    classes, non-finite values, a zero row or an unknown variant."""
    who = "nc3.loss_and_grad"
    m = _f64(means, who, "means", 2)
    r = _f64(rows, who, "rows", 2)
    if m.shape != r.shape:
        raise InputError(f"{who}: means {tuple(m.shape)} and rows {tuple(r.shape)} must have the same shape")
    k, d = m.shape
    loss, grad = _fairnc.nc3_loss_and_grad(m.tobytes(), r.tobytes(), k, d, variant)
    return loss, _from_bytes(grad, "<f8", (k, d))


def _model_from(tokenizer: Any) -> Any:
    """The native model behind ``tokenizer``: a :class:`fairnc.Model`, a checkpoint directory,
    or an object whose ``name_or_path`` names one (a transformers tokenizer or model)."""
    from ._model import Model, load

    if isinstance(tokenizer, Model):
        return tokenizer._native
    if isinstance(tokenizer, _fairnc.Model):
        return tokenizer
    path: Any = None
    if isinstance(tokenizer, (str, os.PathLike)):
        path = os.fspath(tokenizer)
    else:
        name = getattr(tokenizer, "name_or_path", None)
        if isinstance(name, (str, os.PathLike)) and os.path.isdir(os.fspath(name)):
            path = os.fspath(name)
    if path is None:
        raise TypeError(
            "nc3.Regularizer.from_words: tokenizer must be a fairnc.Model, a checkpoint directory "
            "(str or os.PathLike), or an object whose .name_or_path is a local checkpoint directory "
            f"(a transformers tokenizer loaded from disk), not {type(tokenizer).__name__}"
        )
    return load(path, progress=False)._native


class _Nc3Function:
    """Holds the ``torch.autograd.Function`` (created on first use, so torch stays optional)."""

    cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.cls is None:
            torch = _torch()

            class Nc3Loss(torch.autograd.Function):
                @staticmethod
                def forward(ctx: Any, weight: "torch.Tensor", reg: "Regularizer") -> "torch.Tensor":
                    ids = torch.as_tensor(reg._ids, dtype=torch.long, device=weight.device)
                    rows = weight.detach()[ids].to(device="cpu", dtype=torch.float64).numpy()
                    out = reg._native_loss(rows)
                    assert out is not None  # checked by the caller
                    loss, grad = out
                    ctx.save_for_backward(ids, torch.from_numpy(grad))
                    ctx.weight_shape = weight.shape
                    return torch.tensor(loss, dtype=weight.dtype, device=weight.device)

                @staticmethod
                def backward(ctx: Any, grad_output: "torch.Tensor") -> Any:
                    ids, grad = ctx.saved_tensors
                    full = torch.zeros(ctx.weight_shape, dtype=grad_output.dtype, device=grad_output.device)
                    full[ids] = grad.to(dtype=grad_output.dtype, device=grad_output.device)
                    return full * grad_output, None

            cls.cls = Nc3Loss
        return cls.cls


class Regularizer:
    """Running NC3 statistics of a set of fairness classes (one class per token id) and the
    regularizer on them: the term ``fairnc debias`` optimises, by the same code.

    Feed it each batch's last-layer hidden states with :meth:`observe` and add :meth:`loss` of the
    tied output embedding to your loss. Hidden states are accumulated as float32 values in exact
    fixed-point sums (as in ``fairnc debias``), so the means do not depend on batch order.
    """

    def __init__(
        self,
        word_ids: Sequence[int],
        hidden_size: int,
        *,
        vocab_size: Optional[int] = None,
        target: str = "same",
        variant: str = "std",
    ):
        """One class per distinct id of ``word_ids`` (at least two), ordered by id.
        ``hidden_size`` is D of the hidden states, ``vocab_size`` (default: the largest id + 1)
        bounds the ids. ``target="same"`` labels position t with the token at t (masked LMs),
        ``"next"`` with the token at t + 1 (causal LMs). ``variant="std"`` is the paper's term
        (sample std of the alignments), ``"mean"`` the ablation −mean s_c."""
        if isinstance(word_ids, (str, bytes)):
            raise TypeError("nc3.Regularizer: word_ids must be a sequence of token ids, not a string")
        ids = np.asarray(list(word_ids) if not isinstance(word_ids, np.ndarray) else word_ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise InputError("nc3.Regularizer: word_ids must be a flat sequence of integer token ids")
        self._init(_fairnc.Nc3Regularizer([int(i) for i in ids], int(hidden_size), vocab_size, target, variant))

    def _init(self, native: Any) -> None:
        self._native = native
        self._ids: List[int] = list(native.ids)

    @classmethod
    def from_words(
        cls,
        words: PathLike = "gender",
        tokenizer: Any = None,
        *,
        policy: str = "whole-word",
        target: Optional[str] = None,
        variant: str = "std",
    ) -> "Regularizer":
        """The classes of a word set in a model's vocabulary, as ``fairnc debias`` builds them.

        ``words``: a built-in set (``"gender"``, ``"gender-large"``, ``"race"``, ``"religion"``)
        or a TOML/JSON word-set file. ``tokenizer``: a :class:`fairnc.Model`, a checkpoint
        directory, or an object whose ``name_or_path`` is a local checkpoint directory (e.g. a
        transformers tokenizer loaded from disk); it gives the vocabulary, the hidden size and
        the model kind. ``policy``: ``"whole-word"`` keeps only words that are one token,
        ``"first-subword"`` maps each word to its first subword (the Fairness-NC release).
        ``target`` defaults to ``"same"`` for masked LMs and ``"next"`` for causal LMs."""
        if tokenizer is None:
            raise TypeError(
                "nc3.Regularizer.from_words: pass tokenizer= (a fairnc.Model, a checkpoint directory, "
                "or a transformers tokenizer loaded from a local directory)"
            )
        native = _fairnc.Nc3Regularizer.from_words(os.fspath(words), _model_from(tokenizer), policy, target, variant)
        self = cls.__new__(cls)
        self._init(native)
        return self

    @property
    def class_ids(self) -> List[int]:
        """The class token ids, in class order (the order of :attr:`counts` and :attr:`tokens`)."""
        return list(self._ids)

    @property
    def tokens(self) -> List[str]:
        """The class tokens (their ids as text for a regularizer made from ids)."""
        return list(self._native.tokens)

    @property
    def words(self) -> List[List[str]]:
        """The words of each class (several under ``first-subword``; empty when made from ids)."""
        return [list(w) for w in self._native.words]

    @property
    def skipped(self) -> List[Tuple[str, str]]:
        """The words of the word set left out of the classes, with the reason."""
        return [tuple(s) for s in self._native.skipped]  # type: ignore[misc]

    @property
    def counts(self) -> np.ndarray:
        """n_c, ``int64 [K]``: the positions observed per class."""
        return np.asarray(self._native.counts, dtype=np.int64)

    @property
    def seen(self) -> int:
        """The number of classes observed at least once (the term needs two)."""
        return int(self._native.seen)

    @property
    def means(self) -> np.ndarray:
        """μ_c, ``float64 [K, D]`` (zeros for an unseen class)."""
        return _from_bytes(self._native.means(), "<f8", (len(self._ids), self.hidden_size))

    @property
    def hidden_size(self) -> int:
        return int(self._native.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self._native.vocab_size)

    @property
    def target(self) -> str:
        """``"same"`` or ``"next"``: which token labels a position."""
        return str(self._native.target)

    @property
    def variant(self) -> str:
        """``"std"`` (the paper) or ``"mean"`` (the ablation)."""
        return str(self._native.variant)

    def observe(self, hidden_states: Any, input_ids: Any, attention_mask: Any = None) -> int:
        """Add a batch to the running class sums: ``hidden_states [B, T, D]`` (a torch tensor on
        any device, or a numpy array; detached, never differentiated) and ``input_ids [B, T]``,
        the ids the model read (with MLM, the masked input: a ``[MASK]`` labels nothing, as in
        the release). ``attention_mask [B, T]`` (optional) leaves padding out. Only the rows of
        labelled positions are gathered (and copied to the CPU). Returns how many positions were
        added. Raises :class:`fairnc.InputError` for shapes that disagree or non-finite states
        (and then adds nothing)."""
        who = "nc3.Regularizer.observe"
        ids = _ids(input_ids, who, "input_ids")
        b, t = ids.shape
        mask = None if attention_mask is None else _ids(attention_mask, who, "attention_mask", (b, t)).tobytes()
        shape = tuple(hidden_states.shape) if hasattr(hidden_states, "shape") else np.shape(hidden_states)
        if len(shape) != 3 or shape[:2] != (b, t):
            raise InputError(f"{who}: hidden_states must be [batch, length, hidden] = [{b}, {t}, D], not {shape}")
        if shape[2] != self.hidden_size:
            raise InputError(f"{who}: hidden_states have size {shape[2]}, not hidden_size {self.hidden_size}")
        raw_labels, raw_flat = self._native.positions(ids.tobytes(), b, t, mask)
        labels = np.frombuffer(raw_labels, dtype="<i8")
        flat = np.frombuffer(raw_flat, dtype="<i8")
        if labels.size == 0:
            return 0
        d = shape[2]
        if _is_tensor(hidden_states):
            torch = _torch()
            h = hidden_states.detach().reshape(b * t, d)
            idx = torch.from_numpy(flat.copy()).to(h.device)
            feats = h.index_select(0, idx).to(device="cpu", dtype=torch.float32).numpy()
        else:
            h = np.asarray(hidden_states)
            if not (np.issubdtype(h.dtype, np.floating) or np.issubdtype(h.dtype, np.integer)):
                raise InputError(f"{who}: hidden_states must hold numbers, not {h.dtype}")
            feats = h.reshape(b * t, d)[flat]
        feats = np.ascontiguousarray(feats, dtype="<f4")
        self._native.add(labels.tobytes(), feats.tobytes(), int(labels.size))
        return int(labels.size)

    def _native_loss(self, rows: np.ndarray) -> Optional[Tuple[float, np.ndarray]]:
        k, d = len(self._ids), self.hidden_size
        out = self._native.loss_and_grad(np.ascontiguousarray(rows, dtype="<f8").tobytes())
        if out is None:
            return None
        return out[0], _from_bytes(out[1], "<f8", (k, d))

    def _check_weight(self, shape: Tuple[int, ...], who: str) -> None:
        if len(shape) != 2 or shape[1] != self.hidden_size:
            raise InputError(f"{who}: weight must be [vocab, {self.hidden_size}], not {tuple(shape)}")
        if shape[0] <= max(self._ids):
            raise InputError(f"{who}: weight has {shape[0]} rows; class id {max(self._ids)} needs more")

    def loss(self, weight: "torch.Tensor", scale: float = 1.0) -> "torch.Tensor":
        """The term on the classifier ``weight [V, D]`` (the tied output embedding, e.g.
        ``model.get_output_embeddings().weight``) as a differentiable torch scalar, times
        ``scale`` (λ). Its gradient reaches only the rows of the seen classes (computed in
        float64, returned in the weight's dtype and device). A zero scalar without grad while
        fewer than two classes have been seen. Raises ImportError without torch."""
        torch = _torch()
        who = "nc3.Regularizer.loss"
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{who}: weight must be a torch.Tensor, not {type(weight).__name__} (see loss_and_grad)")
        self._check_weight(tuple(weight.shape), who)
        if self.seen < 2:
            return torch.zeros((), dtype=weight.dtype, device=weight.device)
        value = _Nc3Function.get().apply(weight, self)
        return value * scale if scale != 1.0 else value

    def loss_and_grad(self, weight: Any) -> Tuple[float, np.ndarray]:
        """The term and its gradient on the classifier ``weight [V, D]`` (numpy or tensor), in
        float64: (loss, gradient ``[V, D]``, zero outside the rows of the seen classes); (0.0,
        zeros) while fewer than two classes have been seen."""
        who = "nc3.Regularizer.loss_and_grad"
        w = _f64(weight, who, "weight", 2)
        self._check_weight(tuple(w.shape), who)
        grad = np.zeros_like(w)
        out = self._native_loss(w[self._ids])
        if out is None:
            return 0.0, grad
        grad[self._ids] = out[1]
        return out[0], grad

    def state_dict(self) -> dict:
        """The running sums, exactly: ``counts int64 [K]``, ``sums int64 [K·D, 2]`` and
        ``sq_norms int64 [K, 2]`` (fixed-point sums as (low, high) pairs; the layout of
        ``fairnc debias`` checkpoints). Save it with ``np.savez`` or ``torch.save``."""
        return {name: _from_bytes(raw, "<i8", tuple(shape)) for name, raw, shape in self._native.state()}

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict` (of a regularizer over the same classes)."""
        items = []
        for name in ("counts", "sums", "sq_norms"):
            if name not in state:
                raise InputError(f"nc3.Regularizer.load_state_dict: no {name!r} in the state")
            v = state[name]
            a = np.ascontiguousarray(v.detach().cpu().numpy() if _is_tensor(v) else np.asarray(v), dtype="<i8")
            items.append((name, a.tobytes(), list(a.shape)))
        self._native.load_state(items)

    def __repr__(self) -> str:
        return (
            f"fairnc.nc3.Regularizer({len(self._ids)} classes, {self.seen} seen, "
            f"target={self.target!r}, variant={self.variant!r})"
        )
