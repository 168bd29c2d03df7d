"""Every stage from Python against the CLI on the same inputs: the results are the same numbers
(exactly: the JSON the CLI writes, and the files byte for byte), timings aside."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

import fairnc
from conftest import BERT, CORPUS, FIXTURES, read_json, run_cli, write_lines


def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


@pytest.mark.parametrize("extra", [{}, {"convention": "fairness-nc", "heldout": 0.3, "min_count": 2}])
def test_collapse_equals_the_cli(tmp_path, bert, extra):
    flags = [x for k, v in extra.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    run_cli("collapse", "--model", str(BERT), "--corpus", str(CORPUS), "--output", str(tmp_path / "cli"), *flags)
    r = fairnc.collapse(bert, corpus=CORPUS, output=tmp_path / "py", progress=False, **extra)
    want = read_json(tmp_path / "cli" / "collapse.json")
    assert r.to_dict() == want
    for name in ("collapse.json", "classes.csv"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    # Without an output directory the same numbers, and nothing left behind.
    assert fairnc.collapse(bert, corpus=str(CORPUS), progress=False, **extra).to_dict() == want
    assert r.metrics["duality_std"] == want["metrics"]["duality_std"]
    assert r.counts["K"] == len(r.classes) > 1
    assert {"token", "s", "n"} <= set(r.classes[0])
    assert len(r.to_pandas()) == len(r.classes)
    assert r.markdown.startswith("# Neural collapse")


def test_evaluate_equals_the_cli(tmp_path, bert):
    limits = {"crows_limit": 40, "stereoset_limit": 30}
    flags = ["--crows-limit", "40", "--stereoset-limit", "30"]
    run_cli("eval", "--model", str(BERT), "--output", str(tmp_path / "cli"), *flags)
    e = fairnc.evaluate(bert, output=tmp_path / "py", progress=False, **limits)
    assert e.results == read_json(tmp_path / "cli" / "results.json")
    files = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert "results.json" in files and any(f.endswith(".csv") for f in files)
    for name in files:
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    # The per-example tables are the CSVs' rows.
    assert len(e.crows_pairs) == 40 and len(e.seat_tests) == len(e.seat) - 1
    assert e.crows["overall"]["n"] + sum(1 for p in e.crows_pairs if p["skipped"]) == 40
    assert {"ss", "lms", "icat"} <= set(e.stereoset["overall"])
    assert len(e.to_pandas("stereoset_sentences")) == len(e.stereoset_sentences) > 0
    with pytest.raises(ValueError, match="no table"):
        e.to_pandas("pairs")


def test_evaluate_one_task_and_its_options(bert):
    e = fairnc.evaluate(bert, tasks=("crows",), crows_limit=10, crows_variant="nangia", progress=False)
    assert e.stereoset is None and e.seat is None and e.results["settings"]["crows_variant"] == "nangia"
    assert e.stereoset_sentences == [] and e.seat_tests == []


def test_audit_equals_the_cli(tmp_path, bert):
    run_cli("audit", "--model", str(BERT), "--quick", "--max-texts", "300", "--output", str(tmp_path / "cli"))
    a = fairnc.audit(bert, quick=True, output=tmp_path / "py", max_texts=300, progress=False)
    want = read_json(tmp_path / "cli" / "audit.json")
    assert without(a.to_dict(), "seconds") == without(want, "seconds")
    assert (tmp_path / "py" / "summary.csv").read_bytes() == (tmp_path / "cli" / "summary.csv").read_bytes()
    rows = list(csv.DictReader((tmp_path / "cli" / "summary.csv").open()))
    assert [(h["part"], h["metric"], h["value"]) for h in a.headline] == [
        (r["part"], r["metric"], float(r["value"])) for r in rows
    ]
    assert a.collapse.metrics == want["collapse"]["metrics"]
    # The report is the CLI's, but for the time it took.
    def untimed(text):
        return re.sub(r"; [0-9.]+ s\.", "", text)

    assert untimed(a.markdown) == untimed((tmp_path / "cli" / "report.md").read_text())
    assert len(a.to_pandas()) == len(a.headline) > 3


def test_audit_measures_equal_the_cli(tmp_path, bert):
    run_cli("audit", "--model", str(BERT), "--quick", "--max-texts", "300", "--measures", "seat", "--output", str(tmp_path / "cli"))
    a = fairnc.audit(bert, quick=True, output=tmp_path / "py", max_texts=300, measures=["seat"], progress=False)
    assert without(a.to_dict(), "seconds") == without(read_json(tmp_path / "cli" / "audit.json"), "seconds")
    assert "crows" not in a.eval and "seat" in a.eval
    assert not a.to_dict()["largest_gaps"]["crows"], "CrowS-Pairs was not chosen"
    with pytest.raises(fairnc.InputError, match="winobias"):
        fairnc.audit(bert, quick=True, measures=["winobias"], progress=False)


def test_evaluate_self_debias_and_peer_measures_equal_the_cli(tmp_path, bert):
    # Self-Debias prepends a prompt: the short sentences of its fixture fit the tiny model's positions.
    crows, stereoset = FIXTURES / "self_debias" / "crows.csv", FIXTURES / "self_debias" / "stereoset.json"
    flags = ["--tasks", "crows,aul,mlm-bias", "--crows-file", str(crows), "--stereoset-file", str(stereoset), "--self-debias", "gender"]
    run_cli("eval", "--model", str(BERT), "--output", str(tmp_path / "cli"), *flags)
    e = fairnc.evaluate(
        bert, tasks=["crows", "aul", "mlm-bias"], crows_file=crows, stereoset_file=stereoset, self_debias="gender",
        output=tmp_path / "py", progress=False,
    )
    assert e.results == read_json(tmp_path / "cli" / "results.json")
    assert e.results["settings"]["self_debias"] == "gender"
    assert {"crows", "aul", "mlm_bias"} <= set(e.results)
    for name in ("crows.csv", "aul.csv", "mlm-bias.csv"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    with pytest.raises(fairnc.InputError, match="self_debias"):
        fairnc.evaluate(bert, tasks=["crows"], self_debias="sexism", progress=False)


def test_project_equals_the_cli_and_every_stage_reads_the_projected_model(tmp_path):
    flags = ["--corpus", str(CORPUS), "--components", "2"]
    run_cli("debias", "--model", str(BERT), "--method", "sentence-debias", *flags, "--output", str(tmp_path / "cli"))
    r = fairnc.project(BERT, "sentence-debias", corpus=CORPUS, components=2, output=tmp_path / "py", progress=False)
    paths = ("model_dir", "projection_file")
    assert without(r.to_dict(), *paths) == without(read_json(tmp_path / "cli" / "projection.json"), *paths)
    name = "projection.safetensors"
    assert (r.model_dir / name).read_bytes() == (tmp_path / "cli" / "model" / name).read_bytes()
    assert r.method == "sentence-debias" and r.rank == 2 and r.markdown
    projected = r.load(progress=False)
    c = fairnc.collapse(projected, corpus=CORPUS, progress=False)
    assert c.to_dict()["settings"]["projection"]["method"] == "sentence-debias"
    # A second run into the same directory is refused unless asked to overwrite it.
    with pytest.raises(fairnc.InputError, match="overwrite"):
        fairnc.project(BERT, "sentence-debias", corpus=CORPUS, output=tmp_path / "py", progress=False)
    again = fairnc.project(BERT, "inlp", corpus=CORPUS, iterations=2, output=tmp_path / "py", overwrite=True, progress=False)
    assert again.method == "inlp" and again.rank >= 1
    with pytest.raises(fairnc.InputError, match="method"):
        fairnc.project(BERT, "lasso", output=tmp_path / "z", progress=False)


def test_audit_refuses_a_seed_other_than_the_models(bert):
    with pytest.raises(fairnc.InputError, match="load the model with seed=3"):
        fairnc.audit(bert, quick=True, seed=3, progress=False)


def test_debias_equals_the_cli(tmp_path):
    corpus = write_lines(tmp_path / "c.txt", ["he told her that his sister was late .", "she said he and his son left ."] * 4)
    args = {"corpus": str(corpus), "steps": 3, "batch_size": 4, "checkpoint_every": 2}
    run_cli(
        "debias", "--model", str(BERT), "--method", "cda", "--nc3", "10", "--corpus", str(corpus), "--steps", "3",
        "--batch-size", "4", "--checkpoint-every", "2", "--output", str(tmp_path / "cli"),
    )
    r = fairnc.debias(BERT, method="cda", nc3=10.0, output=tmp_path / "py", progress=False, **args)
    want = [json.loads(line) for line in (tmp_path / "cli" / "log.jsonl").read_text().splitlines()]
    assert [without(x, "tokens_per_s") for x in r.log] == [without(x, "tokens_per_s") for x in want]
    assert r.steps == 3 and r.model_dir == tmp_path / "py" / "model"
    weights = "model.safetensors"
    assert (r.model_dir / weights).read_bytes() == (tmp_path / "cli" / "model" / weights).read_bytes()
    assert r.load(progress=False).info["family"] == "bert"
    # A second start into the same directory is refused unless asked to resume or overwrite.
    with pytest.raises(fairnc.InputError, match="overwrite"):
        fairnc.debias(BERT, method="cda", nc3=10.0, output=tmp_path / "py", progress=False, **args)
    again = fairnc.debias(BERT, method="cda", nc3=10.0, output=tmp_path / "py", mode="resume", progress=False, **args)
    assert again.steps == 3
    with pytest.raises(ValueError, match="mode must be"):
        fairnc.debias(BERT, output=tmp_path / "z", mode="append", progress=False)


def synthetic_glue(root: Path) -> Path:
    sst = root / "SST-2"
    sst.mkdir(parents=True)
    good, bad = ["kind", "warm", "happy", "good"], ["cruel", "cold", "sad", "bad"]
    k = 0
    for split, n in (("train", 48), ("dev", 24)):
        lines = ["sentence\tlabel"]
        for _ in range(n):
            label = k % 2
            lines.append(f"the {(good if label else bad)[(k // 2) % 4]} man\t{label}")
            k += 1
        write_lines(sst / f"{split}.tsv", lines)
    return root


def test_glue_equals_the_cli(tmp_path):
    glue_dir = synthetic_glue(tmp_path / "glue")
    run_cli(
        "glue", "--model", str(BERT), "--glue-dir", str(glue_dir), "--tasks", "sst2", "--seeds", "0",
        "--epochs", "1", "--batch-size", "16", "--output", str(tmp_path / "cli"),
    )
    g = fairnc.glue(BERT, glue_dir, tasks=["sst2"], seeds=[0], epochs=1, batch_size=16, output=tmp_path / "py", progress=False)
    # glue.json holds the model's results and, when compared, the base's.
    want = read_json(tmp_path / "cli" / "glue.json")["model"]

    def scores(d):
        return [(t["task"], t["mean"], [without(r, "seconds_per_epoch") for r in t["runs"]]) for t in d["tasks"]]

    assert scores(g.to_dict()) == scores(want) and g.settings == want["settings"]
    assert [r["task"] for r in g.runs] == ["sst2"] and "accuracy" in g.runs[0]
    assert g.base is None and len(g.to_pandas()) == 1


def test_options_list_each_stage(tmp_path, bert):
    assert fairnc.options("collapse")["heldout"] == 0.2
    assert fairnc.options("glue")["settings"]["epochs"] == 3
    assert fairnc.options("debias")["steps"] == 500
    with pytest.raises(fairnc.InputError, match="no stage"):
        fairnc.options("train")


@pytest.mark.parametrize(
    "call,kind,words",
    [
        (lambda m, t: fairnc.collapse(m, held_out=0.5), fairnc.InputError, 'unknown option "held_out" \\(options: .*heldout'),
        (lambda m, t: fairnc.collapse(m, heldout=1.5), ValueError, "heldout must be a fraction"),
        (lambda m, t: fairnc.collapse(m, max_len="long"), ValueError, "option max_len"),
        (lambda m, t: fairnc.collapse(m, corpus=t / "none.txt"), FileNotFoundError, "no such corpus file"),
        (lambda m, t: fairnc.collapse(m, words=t / "none.toml"), FileNotFoundError, "no such word-set file"),
        (lambda m, t: fairnc.evaluate(m, tasks=["crow"]), ValueError, "unknown variant `crow`"),
        (lambda m, t: fairnc.evaluate(m, crows_limit=0), ValueError, "crows_limit must be at least 1"),
        (lambda m, t: fairnc.debias(m, method="magic", output=t / "d"), ValueError, "option method"),
        (lambda m, t: fairnc.debias(m, steps=0, output=t / "d"), ValueError, "steps must be at least 1"),
        (lambda m, t: fairnc.glue(m, t / "none", output=t / "g"), FileNotFoundError, "no such GLUE directory"),
        (lambda m, t: fairnc.glue(m, t, epochs=-1, output=t / "g"), ValueError, "option epochs"),
        (lambda m, t: fairnc.collapse(object()), TypeError, "fairnc.Model, a name or a path"),
    ],
)
def test_bad_inputs_raise_the_documented_exceptions(tmp_path, bert, call, kind, words):
    with pytest.raises(kind, match=words) as e:
        call(bert, tmp_path)
    if kind is not TypeError:
        assert isinstance(e.value, fairnc.Error)
        assert "\n" not in str(e.value)
