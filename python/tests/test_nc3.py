"""fairnc.nc3: the NC3 regularizer for users' own training loops, checked against the formula of
METHOD §5 written here independently in numpy, against central finite differences, and (when
torch is installed) through torch autograd."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import fairnc
from fairnc import nc3

ROOT = pathlib.Path(__file__).resolve().parents[2]
BERT = ROOT / "tests" / "fixtures" / "models" / "bert"

# Figures of the gradient checks, printed at the end (pytest -s) and kept for the report.
FIGURES: dict = {}


def reference_loss(means: np.ndarray, rows: np.ndarray, variant: str = "std") -> float:
    """METHOD §5 in plain numpy: s_c = <normalize(mu_c - mu_G), normalize(w_c)> with mu_G the
    unweighted mean of the class means (a class at mu_G has s_c = 0); the sample std (n - 1) of
    s_c, or -mean s_c."""
    centred = means - means.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    u = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    w_hat = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    s = (u * w_hat).sum(axis=1)
    return float(np.std(s, ddof=1)) if variant == "std" else float(-s.mean())


def reference_grad(means: np.ndarray, rows: np.ndarray, variant: str = "std") -> np.ndarray:
    """The analytic gradient of :func:`reference_loss` in the rows: ds_c/dw_c = (u_c - s_c ŵ_c)/|w_c|,
    dstd/ds_c = (s_c - mean s)/((K - 1) std), dmean/ds_c = 1/K."""
    centred = means - means.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    u = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    wn = np.linalg.norm(rows, axis=1, keepdims=True)
    w_hat = rows / wn
    s = (u * w_hat).sum(axis=1)
    k = len(s)
    if variant == "std":
        dl_ds = (s - s.mean()) / ((k - 1) * np.std(s, ddof=1))
    else:
        dl_ds = -np.ones(k) / k
    ds_dw = (u - s[:, None] * w_hat) / wn
    return dl_ds[:, None] * ds_dw


def central_differences(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (f(up) - f(down)) / (2 * eps)
    return g


def errors(got: np.ndarray, want: np.ndarray) -> tuple:
    abs_err = float(np.max(np.abs(got - want)))
    rel_err = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-12)))
    return abs_err, rel_err


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    return rng.normal(size=(5, 6)), rng.normal(size=(5, 6))


@pytest.mark.parametrize("variant", ["std", "mean"])
def test_loss_and_grad_match_the_numpy_formula_and_finite_differences(data, variant):
    means, rows = data
    loss, grad = nc3.loss_and_grad(means, rows, variant)
    assert grad.shape == rows.shape and grad.dtype == np.float64
    assert loss == pytest.approx(reference_loss(means, rows, variant), rel=1e-13, abs=1e-15)
    a_ref, r_ref = errors(grad, reference_grad(means, rows, variant))
    assert a_ref < 1e-13, a_ref
    fd = central_differences(lambda r: reference_loss(means, r, variant), rows)
    a_fd, r_fd = errors(grad, fd)
    assert a_fd < 1e-8, a_fd
    FIGURES[f"explicit {variant}"] = dict(abs_vs_formula=a_ref, rel_vs_formula=r_ref, abs_vs_fd=a_fd, rel_vs_fd=r_fd)
    print(f"\nnc3.loss_and_grad {variant}: vs formula abs {a_ref:.1e} rel {r_ref:.1e}; vs FD abs {a_fd:.1e} rel {r_fd:.1e}")


def test_a_class_at_the_global_mean_counts_zero():
    means = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    loss, grad = nc3.loss_and_grad(means, rows)
    # s = (1, 0, 0): std = sqrt(((2/3)^2 + 2 (1/3)^2) / 2)
    assert loss == pytest.approx(np.sqrt(1 / 3), rel=1e-14)
    assert np.all(grad[2] == 0)
    assert loss == pytest.approx(reference_loss(means, rows), rel=1e-14)


def word_set(tmp_path):
    path = tmp_path / "pronouns.toml"
    path.write_text('name = "pronouns"\n[[group]]\nname = "male"\nwords = ["he", "his"]\n'
                    '[[group]]\nname = "female"\nwords = ["she", "her"]\n')
    return path


def ids_of(vocab_tokens):
    vocab = (BERT / "vocab.txt").read_text().split("\n")
    return [vocab.index(t) for t in vocab_tokens]


def test_observe_sums_are_the_means_of_the_gathered_rows():
    rng = np.random.default_rng(1)
    reg = nc3.Regularizer([7, 2, 5, 2], 4)
    assert reg.class_ids == [2, 5, 7] and reg.vocab_size == 8 and reg.seen == 0
    ids = np.array([[1, 2, 5, 7, 2], [7, 3, 5, 0, 2]])
    h = rng.normal(size=(2, 5, 4)).astype(np.float32)
    assert reg.observe(h, ids) == 7
    h2 = rng.normal(size=(1, 3, 4))
    assert reg.observe(h2, np.array([[2, 4, 4]])) == 1
    rows = {c: [] for c in reg.class_ids}
    for b in range(2):
        for t in range(5):
            if ids[b, t] in rows:
                rows[int(ids[b, t])].append(h[b, t].astype(np.float64))
    rows[2].append(h2[0, 0].astype(np.float32).astype(np.float64))
    want = np.array([np.mean(rows[c], axis=0) for c in reg.class_ids])
    assert list(reg.counts) == [len(rows[c]) for c in reg.class_ids] == [4, 2, 2]
    assert reg.seen == 3
    np.testing.assert_allclose(reg.means, want, rtol=0, atol=1e-11)
    # The regularizer's loss is the formula on those means and the class rows of w.
    w = rng.normal(size=(8, 4))
    loss, grad = reg.loss_and_grad(w)
    assert loss == pytest.approx(reference_loss(want, w[[2, 5, 7]]), rel=1e-9)
    np.testing.assert_allclose(grad[[2, 5, 7]], reference_grad(want, w[[2, 5, 7]]), rtol=1e-7, atol=1e-9)
    assert np.all(grad[[0, 1, 3, 4, 6]] == 0)
    fd = central_differences(lambda x: reg.loss_and_grad(x)[0], w)
    a_fd, r_fd = errors(grad[[2, 5, 7]], fd[[2, 5, 7]])
    assert a_fd < 1e-8
    assert np.all(fd[[0, 1, 3, 4, 6]] == 0)
    FIGURES["regularizer"] = dict(abs_vs_fd=a_fd, rel_vs_fd=r_fd)
    print(f"\nRegularizer.loss_and_grad vs FD: abs {a_fd:.1e} rel {r_fd:.1e}")


def test_observe_with_target_next_and_a_mask():
    reg = nc3.Regularizer([2, 5], 2, target="next", vocab_size=10)
    assert reg.target == "next"
    ids = np.array([[2, 5, 2, 9], [5, 2, 0, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    h = np.arange(16, dtype=np.float32).reshape(2, 4, 2)
    # Labelled by the next token: (0,0)->5, (0,1)->2, (0,2)->9 (no class), (1,0)->2.
    assert reg.observe(h, ids, attention_mask=mask) == 3
    np.testing.assert_array_equal(reg.counts, [2, 1])
    np.testing.assert_allclose(reg.means, [[(2 + 8) / 2, (3 + 9) / 2], [0, 1]])
    # (1,1) would be labelled by the padding at (1,2): masked out. With left padding the
    # padded position's own state is left out too.
    left = nc3.Regularizer([2, 5], 2, target="next", vocab_size=10)
    assert left.observe(h[:1], np.array([[2, 5, 5, 2]]), attention_mask=np.array([[0, 1, 1, 1]])) == 2
    np.testing.assert_array_equal(left.counts, [1, 1])


def test_state_dict_round_trip():
    rng = np.random.default_rng(3)
    reg = nc3.Regularizer([1, 2, 3], 3)
    reg.observe(rng.normal(size=(2, 4, 3)), np.array([[1, 2, 3, 0], [3, 3, 1, 2]]))
    again = nc3.Regularizer([1, 2, 3], 3)
    again.load_state_dict(reg.state_dict())
    np.testing.assert_array_equal(again.counts, reg.counts)
    np.testing.assert_array_equal(again.means, reg.means)
    with pytest.raises(fairnc.InputError, match="another class set"):
        nc3.Regularizer([1, 2], 3).load_state_dict(reg.state_dict())


def test_from_words_on_the_fixture_model(tmp_path):
    words = word_set(tmp_path)
    model = fairnc.load(str(BERT), progress=False)
    reg = nc3.Regularizer.from_words(words, model)
    assert sorted(reg.tokens) == ["he", "her", "his", "she"]
    assert reg.class_ids == sorted(ids_of(["he", "his", "she", "her"]))
    assert reg.target == "same" and reg.hidden_size == 32
    # A checkpoint path and an object with name_or_path give the same classes.
    assert nc3.Regularizer.from_words(words, str(BERT)).class_ids == reg.class_ids

    class Tok:
        name_or_path = str(BERT)

    assert nc3.Regularizer.from_words(words, Tok(), target="next").target == "next"
    with pytest.raises(TypeError, match="checkpoint directory"):
        nc3.Regularizer.from_words(words, object())
    with pytest.raises(fairnc.InputError, match="policy"):
        nc3.Regularizer.from_words(words, model, policy="whole")
    # The library's own hidden states of the fixture, observed here, give means of those rows.
    hs = model.hidden(["he said her work", "she said his job"], progress=False)
    assert reg.observe(hs.hidden, hs.input_ids, hs.attention_mask) == 4
    assert reg.seen == 4
    for c, id_ in enumerate(reg.class_ids):
        at = hs.input_ids == id_
        np.testing.assert_allclose(reg.means[c], hs.hidden[at].astype(np.float64).mean(axis=0), atol=1e-11)


def test_bad_inputs_raise_the_documented_errors():
    with pytest.raises(fairnc.InputError, match="at least 2 distinct ids"):
        nc3.Regularizer([3, 3], 4)
    with pytest.raises(ValueError, match="variant"):
        nc3.Regularizer([1, 2], 4, variant="median")
    with pytest.raises(fairnc.InputError, match="target"):
        nc3.Regularizer([1, 2], 4, target="prev")
    with pytest.raises(fairnc.InputError, match="vocab_size"):
        nc3.Regularizer([1, 20], 4, vocab_size=10)
    reg = nc3.Regularizer([1, 2], 4)
    with pytest.raises(fairnc.InputError, match="hidden_states"):
        reg.observe(np.zeros((2, 3, 5)), np.ones((2, 3), dtype=np.int64))
    with pytest.raises(fairnc.InputError, match="hidden_states"):
        reg.observe(np.zeros((2, 4, 4)), np.ones((2, 3), dtype=np.int64))
    with pytest.raises(fairnc.InputError, match="input_ids"):
        reg.observe(np.zeros((2, 3, 4)), np.ones(6, dtype=np.int64))
    bad = np.zeros((1, 3, 4))
    bad[0, 1, 2] = np.nan
    with pytest.raises(fairnc.InputError, match="finite"):
        reg.observe(bad, np.array([[1, 2, 1]]))
    assert reg.seen == 0 and list(reg.counts) == [0, 0]  # nothing was added
    with pytest.raises(fairnc.InputError, match="weight"):
        reg.loss_and_grad(np.zeros((3, 5)))
    assert reg.loss_and_grad(np.ones((3, 4))) == (0.0, pytest.approx(np.zeros((3, 4))))
    with pytest.raises(fairnc.InputError, match="same shape"):
        nc3.loss_and_grad(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(fairnc.InputError, match="at least 2 classes"):
        nc3.loss_and_grad(np.ones((1, 2)), np.ones((1, 2)))
    with pytest.raises(fairnc.InputError, match="variant"):
        nc3.loss_and_grad(np.eye(3), np.eye(3), "median")
    with pytest.raises(fairnc.InputError, match="non-finite"):
        nc3.loss_and_grad(np.eye(3), np.full((3, 3), np.inf))
    with pytest.raises(fairnc.InputError, match="zero"):
        nc3.loss_and_grad(np.eye(3), np.zeros((3, 3)))
    with pytest.raises(fairnc.InputError, match="dimensions"):
        nc3.loss_and_grad(np.ones(3), np.ones(3))


def test_loss_without_torch_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    reg = nc3.Regularizer([1, 2], 2)
    with pytest.raises(ImportError, match=r"pip install fairnc\[torch\]"):
        reg.loss(np.zeros((3, 2)))


# ----- the torch wrapper -----


def observed(variant="std"):
    rng = np.random.default_rng(11)
    reg = nc3.Regularizer([2, 5, 7, 9], 6, vocab_size=12, variant=variant)
    reg.observe(rng.normal(size=(2, 6, 6)), np.array([[2, 5, 7, 9, 0, 1], [9, 7, 5, 3, 2, 2]]))
    return reg, rng.normal(size=(12, 6))


@pytest.mark.parametrize("variant", ["std", "mean"])
def test_torch_loss_and_backward_equal_numpy(variant):
    torch = pytest.importorskip("torch", reason="torch not installed: the torch wrapper is untested here")
    reg, w = observed(variant)
    want, want_grad = reg.loss_and_grad(w)
    weight = torch.tensor(w, requires_grad=True)
    loss = reg.loss(weight)
    assert loss.dtype == torch.float64 and loss.shape == ()
    assert loss.item() == want
    (3.0 * loss).backward()
    np.testing.assert_array_equal(weight.grad.numpy(), 3.0 * want_grad)
    assert np.all(weight.grad.numpy()[[0, 1, 3, 4, 6, 8, 10, 11]] == 0)
    assert np.all(np.abs(weight.grad.numpy()[[2, 5, 7, 9]]).sum(axis=1) > 0)
    # float32 weight (as in training): value and gradient in float32, scale multiplies.
    w32 = torch.tensor(w, dtype=torch.float32, requires_grad=True)
    scaled = reg.loss(w32, scale=100.0)
    assert scaled.dtype == torch.float32
    scaled.backward()
    assert w32.grad.dtype == torch.float32
    loss32, grad32 = reg.loss_and_grad(w32.detach().numpy())
    assert scaled.item() == pytest.approx(100 * loss32, rel=1e-6)
    np.testing.assert_allclose(w32.grad.numpy(), 100 * grad32, rtol=1e-5, atol=1e-6)


def test_torch_gradcheck():
    torch = pytest.importorskip("torch", reason="torch not installed: the torch wrapper is untested here")
    reg, w = observed()
    weight = torch.tensor(w, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: reg.loss(x), (weight,), eps=1e-6, atol=1e-8, rtol=1e-6)
    FIGURES["gradcheck"] = "passed (float64, eps 1e-6, atol 1e-8, rtol 1e-6)"


def test_torch_tensors_in_observe_and_the_guard():
    torch = pytest.importorskip("torch", reason="torch not installed: the torch wrapper is untested here")
    reg = nc3.Regularizer([2, 5], 3)
    weight = torch.randn(6, 3, dtype=torch.float32, requires_grad=True)
    h = torch.randn(1, 4, 3, requires_grad=True)
    for seen in range(2):
        zero = reg.loss(weight)
        assert zero.item() == 0.0 and not zero.requires_grad and zero.dtype == torch.float32
        assert reg.seen == seen
        reg.observe(h[:, :1] * 2, torch.tensor([[2 if seen == 0 else 0]]))
    assert reg.observe(h * 2, torch.tensor([[2, 1, 2, 5]])) == 3
    np.testing.assert_array_equal(reg.counts, [3, 1])
    np.testing.assert_allclose(reg.means[0], (2 * h[0, [0, 0, 2]]).detach().double().mean(0).numpy(), atol=1e-6)
    assert reg.loss(weight).requires_grad
    with pytest.raises(TypeError, match="torch.Tensor"):
        reg.loss(np.zeros((6, 3)))
    with pytest.raises(fairnc.InputError, match="weight"):
        reg.loss(torch.zeros(6, 4))


def test_zz_report_figures():
    print("\n" + "\n".join(f"{k}: {v}" for k, v in FIGURES.items()))
