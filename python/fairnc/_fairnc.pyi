"""The native core of fairnc (Rust, PyO3). Private: use the functions of ``fairnc``, which wrap
these. Options are a JSON object of config fields; results are JSON strings; arrays are
``(bytearray of little-endian values, shape)``."""

from typing import List, Optional, Tuple, Union

__version__: str

Array = Tuple[bytearray, List[int]]

class Model:
    @property
    def name(self) -> str: ...
    @property
    def seed(self) -> int: ...
    def info_json(self) -> str: ...
    def hidden(
        self,
        texts: List[str],
        max_len: Optional[int] = None,
        truncate: bool = True,
        batch_size: int = 64,
        features: str = "hidden",
        progress: bool = True,
    ) -> Tuple[Array, Array, Array]: ...

def load(name: str, seed: int = 0, progress: bool = True, device: str = "cpu", dtype: str = "f32") -> Model: ...
def defaults(stage: str) -> str: ...
def collapse(model: Model, options: str, output: Optional[str] = None, overwrite: bool = False, progress: bool = True) -> str: ...
def evaluate(model: Model, options: str, output: Optional[str] = None, progress: bool = True) -> str: ...
def audit(model: Model, options: str, output: Optional[str] = None, progress: bool = True) -> str: ...
def debias(model: Union[Model, str], options: str, output: str, mode: str = "new", progress: bool = True) -> str: ...
def project(model: Union[Model, str], options: str, output: str, overwrite: bool = False, progress: bool = True) -> str: ...
def glue(
    model: Union[Model, str],
    options: str,
    output: str,
    compare: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> str: ...
# The NC3 regularizer (python/src/nc3.rs).
# Arrays cross as little-endian bytes (row-major); shapes in the docstrings.


class Nc3Regularizer:
    """The running NC3 statistics of a class set (one class per token id) and the regularizer
    on them: the library's ``train::nc3::Nc3Regularizer``, the term ``fairnc debias`` optimises.
    ``fairnc.nc3.Regularizer`` wraps it."""

    def __init__(
        self,
        ids: List[int],
        hidden_size: int,
        vocab_size: Optional[int] = None,
        target: str = "same",
        variant: str = "std",
        tokens: Optional[List[str]] = None,
    ) -> None:
        """One class per distinct id (sorted; at least 2), named by ``tokens`` when given (one per
        id). ``vocab_size`` defaults to the largest id + 1. ``target``: "same" or "next";
        ``variant``: "std" or "mean". Raises fairnc.InputError."""
    @staticmethod
    def from_words(
        words: str, model: Model, policy: str = "whole-word", target: Optional[str] = None, variant: str = "std"
    ) -> Nc3Regularizer:
        """The classes of a word set (built-in name or TOML/JSON file) in ``model``'s vocabulary;
        ``policy``: "whole-word" or "first-subword"; ``target`` defaults to "same" for masked LMs,
        "next" for causal LMs. Raises fairnc.InputError (fewer than 2 classes, bad option)."""
    @property
    def ids(self) -> List[int]:
        """The class token ids, in class order."""
    @property
    def tokens(self) -> List[str]:
        """The class tokens, in class order."""
    @property
    def words(self) -> List[List[str]]:
        """The words of each class (empty for classes made from ids)."""
    @property
    def skipped(self) -> List[Tuple[str, str]]:
        """(word, reason) for each word of the set left out."""
    @property
    def hidden_size(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def target(self) -> str:
        """"same" or "next"."""
    @property
    def variant(self) -> str:
        """"std" or "mean"."""
    @property
    def counts(self) -> List[int]:
        """n_c of every class."""
    @property
    def seen(self) -> int:
        """Classes observed at least once."""
    def means(self) -> bytes:
        """μ_c of every class, f64 [K, D] (zeros for an unseen class)."""
    def positions(
        self, input_ids: bytes, batch: int, length: int, mask: Optional[bytes] = None
    ) -> Tuple[bytes, bytes]:
        """The labelled positions of token ids (i64 [B, T]; ``mask`` i64 [B, T], 0 on padding):
        (class indices i64 [N], flat positions b·T + t i64 [N])."""
    def add(self, labels: bytes, feats: bytes, n: int) -> None:
        """Adds features (f32 [N, D]) with their class indices (i64 [N]) to the running sums;
        nothing is added when anything is wrong (fairnc.InputError)."""
    def loss_and_grad(self, rows: bytes) -> Optional[Tuple[float, bytes]]:
        """(loss, gradient f64 [K, D]) at the classifier rows of the classes (f64 [K, D], class
        order), zero gradient on unseen classes; None while fewer than 2 classes are seen."""
    def state(self) -> List[Tuple[str, bytes, List[int]]]:
        """The exact running sums as (name, i64 bytes, shape): counts [K], sums [K·D, 2],
        sq_norms [K, 2] (fixed-point (low, high) pairs; the checkpoint layout)."""
    def load_state(self, state: List[Tuple[str, bytes, List[int]]]) -> None:
        """Restores ``state()``; fairnc.InputError for another class set."""

def nc3_loss_and_grad(means: bytes, rows: bytes, k: int, d: int, variant: str = "std") -> Tuple[float, bytes]:
    """(loss, gradient f64 [K, D] in the rows) of the NC3 term for explicit class means and
    classifier rows (f64 [K, D] each; every class counted as seen; K ≥ 2). Raises
    fairnc.InputError."""
