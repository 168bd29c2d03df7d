"""fairnc: neural collapse on fairness words, bias benchmarks and NC3-regularised debiasing for
language models, from Python. The computations are fairnc's Rust library (the same code as the
``fairnc`` command line, so the numbers are the same); this package is a thin skin over it.

>>> import fairnc
>>> model = fairnc.load("minilm")
>>> fairnc.collapse(model, words="gender", corpus="bug", max_texts=500).metrics["duality_std"]
"""

from __future__ import annotations

from . import _fairnc, errors, nc3
from ._model import HiddenStates, Model, load
from ._results import Audit, CollapseResult, DebiasResult, EvalResult, GlueResult, ProjectionResult
from ._stages import audit, collapse, debias, evaluate, glue, options, project
from .errors import Error, FileNotFound, InputError, PermissionDenied

__version__: str = _fairnc.__version__

__all__ = [
    "Audit",
    "CollapseResult",
    "DebiasResult",
    "Error",
    "EvalResult",
    "FileNotFound",
    "GlueResult",
    "HiddenStates",
    "InputError",
    "Model",
    "PermissionDenied",
    "ProjectionResult",
    "audit",
    "collapse",
    "debias",
    "errors",
    "evaluate",
    "glue",
    "load",
    "nc3",
    "options",
    "project",
]
