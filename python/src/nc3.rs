//! The NC3 regularizer for the user's own training loop (`fairnc.nc3` wraps it): the library's
//! [`fairnc::train::nc3::Nc3Regularizer`] — the running class sums and the loss that `fairnc
//! debias` optimises — with arrays crossing as little-endian bytes. Python gathers the hidden
//! states at the positions [`Nc3Regularizer::positions`] names (only those rows leave the GPU),
//! [`Nc3Regularizer::add`] accumulates them, and [`Nc3Regularizer::loss_and_grad`] gives the term
//! and its gradient in the classifier rows of the classes, for a `torch.autograd.Function`.

use crate::errors::{IntoPy, raise};
use crate::model::Model;
use fairnc::collapse::Target;
use fairnc::model::ModelKind;
use fairnc::train::nc3::{self, Nc3Variant};
use fairnc::words::{Class, ClassSet, Policy, WordSet};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::Mutex;

const WHO: &str = "nc3.Regularizer";

fn input_error(py: Python<'_>, msg: String) -> PyErr {
    raise(py, "InputError", msg)
}

fn variant_of(py: Python<'_>, who: &str, s: &str) -> PyResult<Nc3Variant> {
    match s {
        "std" => Ok(Nc3Variant::Std),
        "mean" => Ok(Nc3Variant::Mean),
        other => Err(input_error(py, format!("{who}: variant must be \"std\" or \"mean\", not {other:?}"))),
    }
}

fn target_of(py: Python<'_>, s: &str) -> PyResult<Target> {
    match s {
        "same" => Ok(Target::Same),
        "next" => Ok(Target::Next),
        other => Err(input_error(py, format!("{WHO}: target must be \"same\" or \"next\", not {other:?}"))),
    }
}

fn target_name(t: Target) -> &'static str {
    match t {
        Target::Same => "same",
        Target::Next => "next",
    }
}

/// Little-endian values of `N` bytes each from `bytes`, which must hold exactly `count` of them.
fn values<const N: usize, T>(
    py: Python<'_>,
    what: &str,
    bytes: &[u8],
    count: usize,
    from: fn([u8; N]) -> T,
) -> PyResult<Vec<T>> {
    if bytes.len() != count * N {
        return Err(input_error(py, format!("{what}: {} bytes, not {count} values of {N} bytes", bytes.len())));
    }
    Ok(bytes.chunks_exact(N).map(|c| from(c.try_into().expect("chunks of N bytes"))).collect())
}

fn le_bytes<'py, const N: usize, T: Copy>(py: Python<'py>, xs: &[T], to: fn(T) -> [u8; N]) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = xs.iter().flat_map(|&x| to(x)).collect();
    PyBytes::new(py, &bytes)
}

/// A named i64 array: (name, little-endian bytes, shape).
type Named<'py> = (String, Bound<'py, PyBytes>, Vec<usize>);

struct State {
    reg: nc3::Nc3Regularizer,
}

/// The running NC3 statistics of a class set and the regularizer on them (`fairnc.nc3.Regularizer`
/// wraps it).
#[pyclass(frozen, module = "fairnc._fairnc")]
pub struct Nc3Regularizer {
    state: Mutex<State>,
    classes: Vec<Class>,
    skipped: Vec<(String, String)>,
    #[pyo3(get)]
    hidden_size: usize,
    #[pyo3(get)]
    vocab_size: usize,
    target: Target,
    variant: Nc3Variant,
}

impl Nc3Regularizer {
    fn build(classes: ClassSet, vocab_size: usize, hidden_size: usize, target: Target, variant: Nc3Variant) -> Self {
        let reg = nc3::Nc3Regularizer::new(&classes, vocab_size, hidden_size, target, variant);
        Nc3Regularizer {
            state: Mutex::new(State { reg }),
            skipped: classes.skipped.iter().map(|s| (s.word.clone(), s.reason.clone())).collect(),
            classes: classes.classes,
            hidden_size,
            vocab_size,
            target,
            variant,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic cannot leave the sums half-updated (add checks before it writes), so a
        // poisoned lock still holds consistent statistics.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Nc3Regularizer {
    /// One class per distinct token id of `ids` (sorted), named by `tokens` when given.
    #[new]
    #[pyo3(signature = (ids, hidden_size, vocab_size = None, target = "same", variant = "std", tokens = None))]
    fn new(
        py: Python<'_>,
        ids: Vec<i64>,
        hidden_size: usize,
        vocab_size: Option<usize>,
        target: &str,
        variant: &str,
        tokens: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let target = target_of(py, target)?;
        let variant = variant_of(py, WHO, variant)?;
        if hidden_size == 0 {
            return Err(input_error(py, format!("{WHO}: hidden_size must be at least 1")));
        }
        if let Some(t) = &tokens
            && t.len() != ids.len()
        {
            return Err(input_error(py, format!("{WHO}: {} tokens for {} word_ids", t.len(), ids.len())));
        }
        let mut by_id = std::collections::BTreeMap::new();
        for (i, &id) in ids.iter().enumerate() {
            let Ok(id) = u32::try_from(id) else {
                return Err(input_error(py, format!("{WHO}: word_ids must be token ids in 0..2^32, not {id}")));
            };
            let token = tokens.as_ref().map_or_else(|| id.to_string(), |t| t[i].clone());
            by_id.entry(id).or_insert(token);
        }
        if by_id.len() < 2 {
            return Err(input_error(py, format!("{WHO}: word_ids must hold at least 2 distinct ids")));
        }
        let max = *by_id.keys().last().expect("two ids") as usize;
        let vocab_size = vocab_size.unwrap_or(max + 1);
        if max >= vocab_size {
            return Err(input_error(py, format!("{WHO}: word id {max} is not below vocab_size {vocab_size}")));
        }
        let classes = ClassSet {
            name: "ids".into(),
            group_names: vec![],
            classes: by_id.into_iter().map(|(id, token)| Class { id, token, words: vec![], groups: vec![] }).collect(),
            skipped: vec![],
        };
        Ok(Self::build(classes, vocab_size, hidden_size, target, variant))
    }

    /// The classes of a word set (built-in name or TOML/JSON file) in a model's vocabulary.
    #[staticmethod]
    #[pyo3(signature = (words, model, policy = "whole-word", target = None, variant = "std"))]
    fn from_words(
        py: Python<'_>,
        words: &str,
        model: &Model,
        policy: &str,
        target: Option<&str>,
        variant: &str,
    ) -> PyResult<Self> {
        let who = "nc3.Regularizer.from_words";
        let policy = match policy {
            "whole-word" => Policy::WholeWord,
            "first-subword" => Policy::FirstSubword,
            other => {
                return Err(input_error(
                    py,
                    format!("{who}: policy must be \"whole-word\" or \"first-subword\", not {other:?}"),
                ));
            }
        };
        let m = model.inner.as_ref();
        let target = match target {
            Some(t) => target_of(py, t)?,
            None if m.kind() == ModelKind::Causal => Target::Next,
            None => Target::Same,
        };
        let variant = variant_of(py, who, variant)?;
        let set = WordSet::load(words).py_err()?;
        let classes = ClassSet::map(&set, &m.tokenizer, policy).py_err()?;
        if classes.classes.len() < 2 {
            return Err(input_error(
                py,
                format!(
                    "{who}: the word set {:?} has {} class(es) in this vocabulary, at least 2 are needed ({} words left out)",
                    set.name,
                    classes.classes.len(),
                    classes.skipped.len()
                ),
            ));
        }
        let vocab_size = m.config.vocab_size.max(m.tokenizer.vocab_size());
        Ok(Self::build(classes, vocab_size, m.feature_width(), target, variant))
    }

    /// The class token ids, in class order.
    #[getter]
    fn ids(&self) -> Vec<u32> {
        self.classes.iter().map(|c| c.id).collect()
    }

    /// The class tokens, in class order.
    #[getter]
    fn tokens(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.token.clone()).collect()
    }

    /// The words of each class (empty for classes made from ids).
    #[getter]
    fn words(&self) -> Vec<Vec<String>> {
        self.classes.iter().map(|c| c.words.clone()).collect()
    }

    /// The words of the word set left out, with why.
    #[getter]
    fn skipped(&self) -> Vec<(String, String)> {
        self.skipped.clone()
    }

    #[getter]
    fn target(&self) -> &'static str {
        target_name(self.target)
    }

    #[getter]
    fn variant(&self) -> &'static str {
        match self.variant {
            Nc3Variant::Std => "std",
            Nc3Variant::Mean => "mean",
        }
    }

    /// n_c of every class.
    #[getter]
    fn counts(&self) -> Vec<u64> {
        self.lock().reg.counts().to_vec()
    }

    /// The number of classes seen so far.
    #[getter]
    fn seen(&self) -> usize {
        self.lock().reg.seen()
    }

    /// μ_c of every class, f64 `[K·D]` bytes (zeros for an unseen class).
    fn means<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let means = self.lock().reg.means();
        le_bytes(py, &means, f64::to_le_bytes)
    }

    /// The labelled positions of a batch of token ids (i64 `[B·T]` bytes; `mask`, when given,
    /// i64 `[B·T]` bytes, 0 on padding): (class indices, flat positions `b·T + t`), both i64 bytes.
    #[pyo3(signature = (input_ids, batch, length, mask = None))]
    fn positions<'py>(
        &self,
        py: Python<'py>,
        input_ids: &[u8],
        batch: usize,
        length: usize,
        mask: Option<&[u8]>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let n = batch * length;
        let ids = values(py, &format!("{WHO}.observe: input_ids"), input_ids, n, i64::from_le_bytes)?;
        let mask = match mask {
            Some(m) => Some(values(py, &format!("{WHO}.observe: attention_mask"), m, n, i64::from_le_bytes)?),
            None => None,
        };
        if let Some(&bad) = ids.iter().find(|&&id| id < 0) {
            return Err(input_error(py, format!("{WHO}.observe: input_ids must be token ids, not {bad}")));
        }
        let on = |i: usize| mask.as_ref().is_none_or(|m| m[i] != 0);
        // Padding (mask 0) labels nothing: an id no class has stands in for it.
        let rows: Vec<Vec<u32>> = (0..batch)
            .map(|b| {
                (0..length)
                    .map(|t| {
                        let i = b * length + t;
                        if on(i) { u32::try_from(ids[i]).unwrap_or(u32::MAX) } else { u32::MAX }
                    })
                    .collect()
            })
            .collect();
        let (labels, flat) = self.lock().reg.labelled_positions(&rows, length);
        // …and a padding position's own state is no feature (left padding with `next`).
        let (labels, flat): (Vec<i64>, Vec<i64>) =
            labels.iter().zip(&flat).filter(|&(_, &f)| on(f as usize)).map(|(&c, &f)| (c as i64, f as i64)).unzip();
        Ok((le_bytes(py, &labels, i64::to_le_bytes), le_bytes(py, &flat, i64::to_le_bytes)))
    }

    /// Adds features (f32 `[N·D]` bytes, D = hidden_size) with their class indices (i64 `[N]`
    /// bytes) to the running sums. Nothing is added when anything is wrong.
    fn add(&self, py: Python<'_>, labels: &[u8], feats: &[u8], n: usize) -> PyResult<()> {
        let who = format!("{WHO}.observe");
        let labels = values(py, &format!("{who}: labels"), labels, n, i64::from_le_bytes)?;
        let feats = values(py, &format!("{who}: hidden_states"), feats, n * self.hidden_size, f32::from_le_bytes)?;
        let k = self.classes.len() as i64;
        if let Some(&bad) = labels.iter().find(|&&c| c < 0 || c >= k) {
            return Err(input_error(py, format!("{who}: class index {bad} is not in 0..{k}")));
        }
        let labels: Vec<usize> = labels.into_iter().map(|c| c as usize).collect();
        if let Some(x) = feats.iter().find(|x| !x.is_finite()) {
            return Err(input_error(py, format!("{who}: hidden_states hold a non-finite value {x}")));
        }
        self.lock().reg.add(&labels, &feats).map_err(|e| input_error(py, format!("{who}: {e:#}")))
    }

    /// (loss, gradient f64 `[K·D]` bytes) of the term at the classifier rows of the classes
    /// (f64 `[K·D]` bytes, class order), or None while fewer than 2 classes are seen.
    fn loss_and_grad<'py>(&self, py: Python<'py>, rows: &[u8]) -> PyResult<Option<(f64, Bound<'py, PyBytes>)>> {
        let who = format!("{WHO}.loss");
        let rows = values(
            py,
            &format!("{who}: weight rows"),
            rows,
            self.classes.len() * self.hidden_size,
            f64::from_le_bytes,
        )?;
        let out = self.lock().reg.loss_and_grad(&rows).map_err(|e| input_error(py, format!("{who}: weight {e:#}")))?;
        Ok(out.map(|(loss, grad)| (loss, le_bytes(py, &grad, f64::to_le_bytes))))
    }

    /// The running sums as (name, i64 bytes, shape) triples: `counts [K]`, `sums [K·D, 2]`,
    /// `sq_norms [K, 2]` (exact fixed-point sums as (low, high) pairs; the checkpoint layout).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Vec<Named<'py>>> {
        let tensors = self.lock().reg.state("").py_err()?;
        tensors
            .into_iter()
            .map(|(name, t)| {
                let shape = t.dims().to_vec();
                let v: Vec<i64> = t.flatten_all().and_then(|t| t.to_vec1()).map_err(anyhow::Error::from).py_err()?;
                Ok((name, le_bytes(py, &v, i64::to_le_bytes), shape))
            })
            .collect()
    }

    /// Restores [`Self::state`] (the same triples).
    fn load_state(&self, py: Python<'_>, state: Vec<Named<'_>>) -> PyResult<()> {
        let who = format!("{WHO}.load_state_dict");
        let mut map = std::collections::BTreeMap::new();
        for (name, bytes, shape) in state {
            let n: usize = shape.iter().product();
            let v = values(py, &format!("{who}: {name}"), bytes.as_bytes(), n, i64::from_le_bytes)?;
            let t = candle_core::Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
                .map_err(anyhow::Error::from)
                .py_err()?;
            map.insert(name, t);
        }
        self.lock().reg.load_state(&map, "").map_err(|e| input_error(py, format!("{who}: {e:#}")))
    }
}

/// (loss, gradient f64 `[K·D]` bytes) of the term for explicit class means and classifier rows
/// (f64 `[K·D]` bytes each; every class counted as seen).
#[pyfunction]
#[pyo3(signature = (means, rows, k, d, variant = "std"))]
fn nc3_loss_and_grad<'py>(
    py: Python<'py>,
    means: &[u8],
    rows: &[u8],
    k: usize,
    d: usize,
    variant: &str,
) -> PyResult<(f64, Bound<'py, PyBytes>)> {
    let who = "nc3.loss_and_grad";
    let variant = variant_of(py, who, variant)?;
    let means = values(py, &format!("{who}: means"), means, k * d, f64::from_le_bytes)?;
    let rows = values(py, &format!("{who}: rows"), rows, k * d, f64::from_le_bytes)?;
    let (loss, grad) =
        nc3::loss_and_grad(&means, &rows, k, d, variant).map_err(|e| input_error(py, format!("{who}: {e:#}")))?;
    Ok((loss, le_bytes(py, &grad, f64::to_le_bytes)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Nc3Regularizer>()?;
    m.add_function(wrap_pyfunction!(nc3_loss_and_grad, m)?)?;
    Ok(())
}
