"""fairnc.load, Model.info and Model.hidden, against the CLI's `info --json` and `hidden`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fairnc
from conftest import BERT, GPT2, LLAMA, OPT, read_safetensors, run_cli, write_lines

TEXTS = ["he said that she was late .", "her son and his daughter met at the station yesterday .", "she"]


def test_info_equals_the_cli(bert):
    assert bert.info == json.loads(run_cli("info", "--model", str(BERT), "--json"))
    assert bert.info["family"] == "bert" and bert.info["kind"] == "masked"
    assert bert.name == str(BERT) and bert.seed == 0
    assert "Model(" in repr(bert)


@pytest.mark.parametrize(
    "path,features", [(BERT, "hidden"), (BERT, "head"), (GPT2, "hidden"), (LLAMA, "hidden"), (OPT, "hidden")]
)
def test_hidden_states_equal_the_cli_bit_for_bit(tmp_path, path, features):
    model = fairnc.load(path, progress=False)
    got = model.hidden(TEXTS, features=features, batch_size=2)
    inp = write_lines(tmp_path / "in.txt", TEXTS)
    out = tmp_path / "h.safetensors"
    run_cli("hidden", "--model", str(path), "--input", str(inp), "--output", str(out), "--features", features, "--batch-size", "2")
    want = read_safetensors(out)
    assert got.hidden.dtype == np.float32 and got.hidden.shape == want["hidden"].shape
    # OPT's rows come after project_out: the width of its (embedding-sized) head.
    width = 16 if path == OPT else model.info["hidden_size"]
    assert got.hidden.shape[0] == len(TEXTS) and got.hidden.shape[2] == width
    # Bit for bit: the same float32 words, not merely close.
    assert got.hidden.tobytes() == want["hidden"].tobytes()
    assert np.array_equal(got.attention_mask, want["attention_mask"])
    assert np.array_equal(got.input_ids, want["input_ids"])
    # Padding is zero and the mask says where the text is.
    lengths = got.attention_mask.sum(1)
    for i, n in enumerate(lengths):
        assert not got.hidden[i, n:].any()
        assert np.isfinite(got.hidden[i, :n]).all()
    got.hidden[0, 0, 0] = 1.0  # the arrays are the caller's to modify


def test_an_untied_decoder_names_its_head_as_the_classifier():
    info = fairnc.load(LLAMA, progress=False).info
    assert info == json.loads(run_cli("info", "--model", str(LLAMA), "--json"))
    assert info["family"] == "llama" and info["kind"] == "causal" and info["kv_heads"] == 2
    assert info["classifier"] == "lm_head.weight" and info["tying"].startswith("untied")


def test_hidden_truncates_or_refuses_long_texts(bert):
    long = " ".join(["he"] * 100)
    assert bert.hidden([long], max_len=8).hidden.shape[1] == 8
    with pytest.raises(fairnc.InputError, match="longer than 8 tokens"):
        bert.hidden([long], max_len=8, truncate=False)


@pytest.mark.parametrize(
    "call,kind,words",
    [
        (lambda m: m.hidden([]), fairnc.InputError, "no texts"),
        (lambda m: m.hidden(["a"], max_len=1), ValueError, "max_len must be at least 2"),
        (lambda m: m.hidden(["a"], batch_size=0), ValueError, "batch_size"),
        (lambda m: m.hidden(["a"], features="logits"), ValueError, "features must be hidden or head"),
        (lambda m: m.hidden("one string"), TypeError, "list of strings"),
    ],
)
def test_bad_hidden_inputs_raise(bert, call, kind, words):
    with pytest.raises(kind, match=words):
        call(bert)


def test_bad_models_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory") as e:
        fairnc.load(tmp_path / "nope")
    assert isinstance(e.value, fairnc.Error) and "\n" not in str(e.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(fairnc.InputError, match="is a file"):
        fairnc.load(tmp_path / "file")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(fairnc.Error, match="config.json"):
        fairnc.load(broken)
    with pytest.raises(TypeError):
        fairnc.load(3)  # type: ignore[arg-type]


def test_load_takes_a_dtype_and_refuses_bad_devices_and_dtypes():
    f32 = fairnc.load(LLAMA, progress=False).hidden(TEXTS).hidden
    bf16 = fairnc.load(LLAMA, progress=False, dtype="bf16").hidden(TEXTS).hidden
    assert bf16.dtype == np.float32 and bf16.shape == f32.shape
    # bf16 parameters move outputs by at most 3% of their largest |value| (tests/formats.rs).
    assert np.abs(bf16 - f32).max() <= 0.03 * np.abs(f32).max()
    with pytest.raises(fairnc.InputError, match="device"):
        fairnc.load(LLAMA, progress=False, device="tpu")
    with pytest.raises(fairnc.InputError, match="dtype"):
        fairnc.load(LLAMA, progress=False, dtype="int8")
