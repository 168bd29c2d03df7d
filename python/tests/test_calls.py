"""How long calls behave: they release the GIL, and Ctrl-C stops them with KeyboardInterrupt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fairnc
from conftest import BERT, write_lines

CORPUS_LINES = ["he told her that his sister was late .", "she said he and his son left ."]


def test_long_calls_release_the_gil(tmp_path):
    corpus = write_lines(tmp_path / "c.txt", CORPUS_LINES * 8)
    done = {}

    def train():
        t = time.perf_counter()
        fairnc.debias(BERT, method="dropout", corpus=str(corpus), steps=40, batch_size=4, output=tmp_path / "run", progress=False)
        done["seconds"] = time.perf_counter() - t

    worker = threading.Thread(target=train)
    worker.start()
    spins = 0
    while worker.is_alive():
        spins += 1
        time.sleep(0.001)
    worker.join()
    assert "seconds" in done, "the training thread failed"
    # With the GIL held this thread would not run until the call returned; released, it spins
    # about once a millisecond (a tenth of that is asked, for a loaded machine).
    assert spins > 0.1 * done["seconds"] / 0.001 and spins > 20, (spins, done)


CHILD = r"""
import sys, time, fairnc
out = sys.argv[1]
lines = ["he told her that his sister was late .", "she said he and his son left ."] * 8
open(out + ".txt", "w").write("\n".join(lines) + "\n")
print("started", flush=True)
t = time.perf_counter()
try:
    fairnc.debias(sys.argv[2], method="dropout", corpus=out + ".txt", steps=1000000, batch_size=4, output=out, progress=False)
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.perf_counter() - t:.2f}", flush=True)
"""


def test_ctrl_c_stops_a_long_call_with_keyboard_interrupt(tmp_path):
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "run"), str(BERT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert p.stdout.readline().strip() == "started"
    time.sleep(2.0)  # into the training steps
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("Ctrl-C did not stop the call within 30 s")
    assert out.startswith("interrupted"), (out, err)
    assert p.returncode == 0, err
    # It stopped where it was: the run directory is a (resumable) run, not a finished one.
    assert (Path(tmp_path / "run") / "run.json").exists()
    assert not (Path(tmp_path / "run") / "model").exists()
