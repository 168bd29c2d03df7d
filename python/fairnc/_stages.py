"""The library's stages. Each takes a model, its main arguments, and the stage's other options
by keyword: the fields of the Rust config (``fairnc.options(stage)`` lists them with their
defaults), spelled as in the experiment TOML. An unknown option or a bad value raises
:class:`fairnc.InputError` naming it."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence, Union

from . import _fairnc
from ._model import Model, PathLike, load
from ._results import Audit, CollapseResult, DebiasResult, EvalResult, GlueResult, ProjectionResult

ModelLike = Union[Model, PathLike]


def _plain(value: Any) -> Any:
    """A value as JSON holds it: paths as strings, tuples and sets as lists."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (tuple, list, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _options(given: Dict[str, Any]) -> str:
    return json.dumps({k: _plain(v) for k, v in given.items()})


def _model(model: ModelLike, progress: bool) -> Model:
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load(model, progress=progress)
    raise TypeError(f"model must be a fairnc.Model, a name or a path, not {type(model).__name__}")


def _name(model: ModelLike) -> Union[_fairnc.Model, str]:
    """What a stage that trains fresh copies takes: the loaded model (for its name and seed) or a name."""
    if isinstance(model, Model):
        return model._native
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    raise TypeError(f"model must be a fairnc.Model, a name or a path, not {type(model).__name__}")


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def options(stage: str) -> Dict[str, Any]:
    """The options of a stage (``"collapse"``, ``"evaluate"``, ``"audit"``, ``"debias"``, ``"project"``,
    ``"glue"``) with their defaults."""
    return json.loads(_fairnc.defaults(stage))


def collapse(
    model: ModelLike,
    words: str = "gender",
    corpus: str = "bug",
    *,
    output: Optional[PathLike] = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> CollapseResult:
    """Neural collapse of ``model`` on the classes of a word set (``gender``, ``gender-large``,
    ``race``, ``religion``, a TOML/JSON file, or ``vocabulary``) over a corpus (``bug``, ``gap``,
    ``bold``, or a text file, one text per line): ``fairnc collapse``. Options: ``max_texts``,
    ``convention`` (``default`` or ``fairness-nc``), ``policy``, ``target``, ``features``,
    ``cdnv_power``, ``min_count``, ``heldout``, ``max_len``, ``batch_size``, ``block``.
    With ``output``, the command's files are written there too (and its checkpoints kept)."""
    m = _model(model, progress)
    raw = _fairnc.collapse(m._native, _options(dict(words=words, corpus=corpus, **options)), _path(output), overwrite, progress)
    return CollapseResult._from_json(raw)


def evaluate(
    model: ModelLike,
    tasks: Sequence[str] = ("crows", "stereoset", "seat"),
    *,
    output: Optional[PathLike] = None,
    progress: bool = True,
    **options: Any,
) -> EvalResult:
    """The bias benchmarks: ``fairnc eval``. ``tasks``: any of ``crows``, ``stereoset``
    (intrasentence), ``seat``, ``stereoset-inter``, ``becpro``, ``aul``, ``mlm-bias``.
    Options: ``bias``, ``crows_variant``, ``crows_file``, ``crows_limit``, ``stereoset_split``,
    ``stereoset_file``, ``stereoset_limit``, ``seat_dir``, ``seat_tests``, ``becpro_file``,
    ``becpro_limit``, ``becpro_masking``, ``aul_direction``, ``self_debias`` (``gender``,
    ``race``, ``religion``, ``auto`` or ``all``: Self-Debias scoring of CrowS-Pairs and
    StereoSet), ``batch_size``, ``seed`` (default: the model's). With ``output``, the command's
    files are written there."""
    m = _model(model, progress)
    raw = _fairnc.evaluate(m._native, _options(dict(tasks=list(tasks), **options)), _path(output), progress)
    return EvalResult._from_json(raw)


def audit(
    model: ModelLike,
    quick: bool = False,
    output: Optional[PathLike] = None,
    *,
    progress: bool = True,
    **options: Any,
) -> Audit:
    """Neural collapse and the bias benchmarks in one report: ``fairnc audit``. ``quick``: a
    smaller run (1,500 texts, the first 300 CrowS-Pairs pairs and StereoSet clusters). Options:
    ``words``, ``max_texts``, ``seat_dir``, ``measures`` (benchmark names, as ``fairnc audit
    --measures``; default: every benchmark for the model's kind), ``self_debias``,
    ``projection`` (a ``projection.safetensors`` to apply to a model loaded without it). With
    ``output``, the report (Markdown, HTML, JSON, CSV, plots) is written there."""
    m = _model(model, progress)
    raw = _fairnc.audit(m._native, _options(dict(quick=quick, **options)), _path(output), progress)
    return Audit._from_json(raw)


def debias(
    model: ModelLike,
    method: str = "cda",
    nc3: Optional[float] = None,
    *,
    output: PathLike,
    mode: str = "new",
    progress: bool = True,
    **options: Any,
) -> DebiasResult:
    """Fine-tune a fresh copy of ``model`` to remove bias: ``fairnc debias``. ``method``: ``cda``
    (counterfactual augmentation), ``dropout``, ``bec``, ``ase`` or ``contrastive`` (MABEL-style); ``nc3``: λ of the NC3
    regularizer (None: not optimised). ``output``: the run directory (the trained checkpoint is
    ``output/model``); ``mode``: ``new``, ``resume`` (continue its last checkpoint) or
    ``overwrite``. Options: ``seed`` (default: the model's), ``nc3_variant``, ``words``,
    ``target``, ``policy``, ``corpus``, ``train``, ``max_texts``, ``steps``, ``batch_size``,
    ``grad_accum``, ``lr``, ``warmup``, ``weight_decay``, ``max_grad_norm``, ``max_len``,
    ``checkpoint_every``."""
    raw = _fairnc.debias(_name(model), _options(dict(method=method, nc3=nc3, **options)), os.fspath(output), mode, progress)
    return DebiasResult._from_json(raw)


def project(
    model: ModelLike,
    method: str = "sentence-debias",
    *,
    output: PathLike,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> ProjectionResult:
    """Post-hoc debiasing by projection, as bias-bench implements it: ``fairnc debias --method
    sentence-debias|inlp``. ``method``: ``sentence-debias`` (the bias subspace of counterfactual
    sentence pairs) or ``inlp`` (iterative nullspace projection). ``output``: the run directory
    (the projected model is ``output/model``; every stage applies its projection on loading);
    ``overwrite``: replace an earlier projection run there. Options: ``bias``, ``words``,
    ``corpus``, ``max_texts``, ``components``, ``iterations``, ``per_class``, ``max_len``,
    ``batch_size``, ``seed`` (default: the model's), ``drop_last_batch``."""
    raw = _fairnc.project(_name(model), _options(dict(method=method, **options)), os.fspath(output), overwrite, progress)
    return ProjectionResult._from_json(raw)


def glue(
    model: ModelLike,
    glue_dir: PathLike,
    tasks: Sequence[str] = ("sst2", "mrpc", "rte", "cola", "stsb"),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    output: PathLike,
    compare: Optional[ModelLike] = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> GlueResult:
    """Fine-tune and score on GLUE, one run per task and seed: ``fairnc glue``. ``glue_dir``: the
    glue_data layout (CoLA/, SST-2/, ... with train.tsv and dev.tsv). ``compare``: a base model
    (or a directory of an earlier run) to put beside it. Options: ``epochs``, ``lr``,
    ``batch_size``, ``max_len``, ``max_train``."""
    given = dict(glue_dir=glue_dir, tasks=list(tasks), seeds=list(seeds), **options)
    base = None if compare is None else (compare.name if isinstance(compare, Model) else os.fspath(compare))
    raw = _fairnc.glue(_name(model), _options(given), os.fspath(output), base, overwrite, progress)
    return GlueResult._from_json(raw)
