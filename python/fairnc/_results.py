"""The results of the stages: the JSON the CLI writes (``.to_dict()``), with attributes for its
parts, its per-class or per-example tables as lists of dicts, ``.to_pandas(table)`` when pandas
is installed, and the text the CLI prints (``.markdown``; shown by Jupyter)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

Table = List[Dict[str, Any]]


class _Result:
    """Common parts: the result's JSON and the tables it has."""

    _tables: Tuple[str, ...] = ()

    def __init__(self, data: Dict[str, Any], markdown: str = ""):
        self._data = data
        self._markdown = markdown

    @classmethod
    def _from_json(cls, raw: str) -> Any:
        out = json.loads(raw)
        return cls(out["result"], out.get("markdown", ""))

    def to_dict(self) -> Dict[str, Any]:
        """The result as the CLI's JSON file holds it (a copy)."""
        return copy.deepcopy(self._data)

    @property
    def markdown(self) -> str:
        """What the CLI prints for this result (Markdown)."""
        return self._markdown

    def _repr_markdown_(self) -> str:
        return self._markdown

    def to_pandas(self, table: Optional[str] = None) -> Any:
        """One of the result's tables (default: the first of ``tables``) as a DataFrame."""
        try:
            import pandas
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas needs pandas: pip install pandas (or fairnc[pandas])") from e
        name = table or self._tables[0]
        if name not in self._tables:
            raise ValueError(f"{type(self).__name__} has no table {name!r} (tables: {', '.join(self._tables)})")
        return pandas.DataFrame(getattr(self, name))

    @property
    def tables(self) -> Tuple[str, ...]:
        """The names of the tables ``to_pandas`` can give."""
        return self._tables


class CollapseResult(_Result):
    """Neural collapse of one model on one word set (``collapse.json``)."""

    _tables = ("classes", "skipped")

    @property
    def metrics(self) -> Dict[str, Optional[float]]:
        """NC1–NC4 (``cdnv``, ``equinorm_cov``, ``equiangular_mean``/``_std``, ``logkernel_*``,
        ``duality_mean``/``_dist``/``_std``/``_cov``, ``ncc_agreement``); None where undefined."""
        return self._data["metrics"]

    @property
    def counts(self) -> Dict[str, int]:
        """Classes measured (``K``), below the minimum count, and statistics/held-out positions."""
        return self._data["counts"]

    @property
    def settings(self) -> Dict[str, Any]:
        return self._data["settings"]

    @property
    def groups(self) -> Dict[str, Dict[str, Any]]:
        """Per group of the word set (e.g. female, male): classes, positions, alignment summary."""
        return self._data["groups"]

    @property
    def classes(self) -> Table:
        """One row per class: token, id, words, groups, positions ``n``, alignment ``s``, ``dist``, ``var``, NCC."""
        return self._data["classes"]

    @property
    def skipped(self) -> Table:
        """Words of the set left out, with the reason."""
        return self._data["skipped"]

    @property
    def merged(self) -> Table:
        return self._data["merged"]

    @property
    def notes(self) -> List[str]:
        return self._data["notes"]

    def __repr__(self) -> str:
        m = self.metrics
        return f"CollapseResult(K={self.counts['K']}, duality_std={m.get('duality_std')}, cdnv={m.get('cdnv')})"


class EvalResult(_Result):
    """The bias benchmarks of one model: the summaries of ``results.json`` and the per-example scores."""

    _tables = ("crows_pairs", "stereoset_sentences", "seat_tests")

    @property
    def results(self) -> Dict[str, Any]:
        """``results.json``: the summaries, settings and notes."""
        return self._data["results"]

    @property
    def crows(self) -> Optional[Dict[str, Any]]:
        """CrowS-Pairs per bias type and ``overall`` (``metric``: % of pairs preferring the stereotype)."""
        return self.results.get("crows")

    @property
    def stereoset(self) -> Optional[Dict[str, Any]]:
        """StereoSet per domain and ``overall``: ``ss``, ``lms``, ``icat``."""
        return self.results.get("stereoset")

    @property
    def seat(self) -> Optional[Dict[str, Any]]:
        """SEAT per test (effect size, p-value) and the average absolute effect per bias type."""
        return self.results.get("seat")

    @property
    def notes(self) -> List[str]:
        return self.results.get("notes", [])

    @property
    def crows_pairs(self) -> Table:
        """One row per CrowS-Pairs pair scored (or skipped, with the reason)."""
        c = self._data.get("crows")
        return c["pairs"] if c else []

    @property
    def stereoset_sentences(self) -> Table:
        """One row per StereoSet sentence scored."""
        s = self._data.get("stereoset")
        return s["sentences"] if s else []

    @property
    def seat_tests(self) -> Table:
        """One row per SEAT test: its name and score."""
        return [{"test": name, **score} for name, score in (self._data.get("seat") or [])]

    def __repr__(self) -> str:
        parts = []
        if self.crows:
            parts.append(f"crows={self.crows['overall']['metric']:.2f}")
        if self.stereoset:
            parts.append(f"stereoset_ss={self.stereoset['overall']['ss']:.2f}")
        if self.seat:
            parts.append(f"seat={self.seat.get('avg_abs_effect')}")
        return f"EvalResult({', '.join(parts)})"


class Audit(_Result):
    """Neural collapse and the bias benchmarks of one model (``audit.json``)."""

    _tables = ("headline", "skipped")

    def __init__(self, data: Dict[str, Any], markdown: str = "", headline: Optional[Table] = None):
        super().__init__(data, markdown)
        self._headline = headline or []

    @classmethod
    def _from_json(cls, raw: str) -> "Audit":
        out = json.loads(raw)
        return cls(out["result"], out["markdown"], out["headline"])

    @property
    def headline(self) -> Table:
        """One number per row (``part``, ``metric``, ``value``): ``summary.csv``."""
        return self._headline

    @property
    def model(self) -> str:
        return self._data["model"]

    @property
    def collapse(self) -> CollapseResult:
        return CollapseResult(self._data["collapse"])

    @property
    def eval(self) -> Dict[str, Any]:
        """The benchmarks' summaries (as ``EvalResult.results``)."""
        return self._data["eval"]

    @property
    def skipped(self) -> Table:
        """Parts not run, why, and how to run them."""
        return self._data["skipped"]

    @property
    def seconds(self) -> Dict[str, float]:
        return self._data["seconds"]

    def __repr__(self) -> str:
        return f"Audit({self.model!r}, {len(self.headline)} headline numbers, {len(self.skipped)} parts skipped)"


class DebiasResult(_Result):
    """A finished debias run."""

    _tables = ("log",)

    @property
    def steps(self) -> int:
        """Steps done in all (earlier invocations of a resumed run included)."""
        return self._data["steps"]

    @property
    def model_dir(self) -> Path:
        """The trained model: a Hugging Face checkpoint directory."""
        return Path(self._data["model_dir"])

    @property
    def log(self) -> Table:
        """Every step's record (``log.jsonl``): losses, the NC3 term, learning rate, ..."""
        return self._data["log"]

    def load(self, seed: int = 0, *, progress: bool = True) -> Any:
        """The trained model, loaded."""
        from ._model import load

        return load(self.model_dir, seed, progress=progress)

    def __repr__(self) -> str:
        return f"DebiasResult(steps={self.steps}, model_dir={str(self.model_dir)!r})"


class ProjectionResult(_Result):
    """A finished post-hoc projection (``projection.json``): SentenceDebias or INLP."""

    @property
    def method(self) -> str:
        return self._data["method"]

    @property
    def rank(self) -> int:
        """Directions removed from the last hidden states."""
        return self._data["rank"]

    @property
    def model_dir(self) -> Path:
        """The projected model: the base checkpoint with ``projection.safetensors`` beside it,
        which every stage applies when it loads the directory."""
        return Path(self._data["model_dir"])

    def load(self, seed: int = 0, *, progress: bool = True) -> Any:
        """The projected model, loaded."""
        from ._model import load

        return load(self.model_dir, seed, progress=progress)

    def __repr__(self) -> str:
        return f"ProjectionResult({self.method!r}, rank={self.rank}, model_dir={str(self.model_dir)!r})"


class GlueResult(_Result):
    """GLUE fine-tuning runs of one model (``glue.json``), with the base model's when compared."""

    _tables = ("runs",)

    def __init__(self, data: Dict[str, Any], markdown: str = "", base: Optional[Dict[str, Any]] = None):
        super().__init__(data, markdown)
        self._base = base

    @classmethod
    def _from_json(cls, raw: str) -> "GlueResult":
        out = json.loads(raw)
        return cls(out["result"], out["markdown"], out.get("base"))

    @property
    def model(self) -> str:
        return self._data["model"]

    @property
    def settings(self) -> Dict[str, Any]:
        return self._data["settings"]

    @property
    def tasks(self) -> Table:
        """Per task: the mean and std over seeds of each metric, and the runs."""
        return self._data["tasks"]

    @property
    def runs(self) -> Table:
        """One row per task and seed: its metrics and timing."""
        rows = []
        for t in self._data["tasks"]:
            for r in t["runs"]:
                rows.append({"task": t["task"], **{k: v for k, v in r.items() if k != "metrics"}, **r["metrics"]})
        return rows

    @property
    def base(self) -> Optional["GlueResult"]:
        """The base model's results (``compare=``), or None."""
        return None if self._base is None else GlueResult(self._base)

    def __repr__(self) -> str:
        return f"GlueResult({self.model!r}, tasks={[t['task'] for t in self.tasks]})"
