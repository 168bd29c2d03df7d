"""Shared pieces of the Python tests: where the repository's fixtures and the CLI are, and an
independent reader of the CLI's safetensors output (the tests compare the package with the CLI).

The CLI binary is the one ``cargo test`` (or ``cargo build``) builds: ``target/debug/fairnc`` or
``target/release/fairnc``, or ``$FAIRNC_BIN``. A test that needs it fails, saying so, when it is
missing: it never passes without the comparison."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
BERT = FIXTURES / "models" / "bert"
GPT2 = FIXTURES / "models" / "gpt2"
LLAMA = FIXTURES / "models" / "llama"
OPT = FIXTURES / "models" / "opt"
CORPUS = FIXTURES / "collapse" / "corpus.txt"

# Bars would only clutter pytest's output (they draw only on a terminal anyway).
os.environ.setdefault("FAIRNC_NO_PROGRESS", "1")


def cli_binary() -> Path:
    given = os.environ.get("FAIRNC_BIN")
    candidates = [Path(given)] if given else [REPO / "target" / "debug" / "fairnc", REPO / "target" / "release" / "fairnc"]
    found = [c for c in candidates if c.is_file()]
    if not found:
        pytest.fail(
            "the fairnc CLI is needed to compare with: build it (`cargo build`, or `cargo test` as the README's "
            f"test command does) or set FAIRNC_BIN; looked for {', '.join(map(str, candidates))}"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def run_cli(*args: str) -> str:
    """Runs the CLI, failing the test with its stderr when it fails; returns stdout."""
    p = subprocess.run([str(cli_binary()), *args], capture_output=True, text=True, env={**os.environ, "FAIRNC_NO_PROGRESS": "1"})
    if p.returncode != 0:
        pytest.fail(f"fairnc {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p.stdout


def read_json(path: Path):
    return json.loads(Path(path).read_text())


DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U32": np.uint32, "BF16": None}


def read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    """The tensors of a safetensors file, read by the format's definition (8-byte little-endian
    header length, JSON header, raw little-endian data)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=np.dtype(DTYPES[meta["dtype"]]).newbyteorder("<")).reshape(meta["shape"])
    return out


@pytest.fixture(scope="session")
def bert():
    import fairnc

    return fairnc.load(BERT, progress=False)


@pytest.fixture(scope="session")
def gpt2():
    import fairnc

    return fairnc.load(GPT2, progress=False)


def write_lines(path: Path, lines: List[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path
