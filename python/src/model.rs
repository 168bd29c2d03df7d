//! `fairnc.load` and the loaded model: its facts and its hidden states.

use crate::call::long;
use crate::errors::IntoPy;
use fairnc::model::hidden_states::hidden_states;
use fairnc::model::{LanguageModel, Overflow};
use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use std::sync::Arc;

/// A loaded model (`fairnc.Model` wraps it).
#[pyclass(frozen, module = "fairnc._fairnc")]
pub struct Model {
    pub inner: Arc<LanguageModel>,
    /// The seed it was loaded with (a new head's initialisation, dropout); stages default to it.
    #[pyo3(get)]
    pub seed: u64,
}

#[pyfunction]
#[pyo3(signature = (name, seed = 0, progress = true, device = "cpu", dtype = "f32"))]
pub fn load(py: Python<'_>, name: String, seed: u64, progress: bool, device: &str, dtype: &str) -> PyResult<Model> {
    use fairnc::util::device::{DeviceSpec, Dtype};
    let bad = |what: &str, e: String| crate::errors::raise(py, "InputError", format!("load: {what}: {e}"));
    let device: DeviceSpec = device.parse().map_err(|e| bad("device", e))?;
    let dtype = match dtype {
        "f32" => Dtype::F32,
        "bf16" => Dtype::Bf16,
        "f16" => Dtype::F16,
        other => return Err(bad("dtype", format!("expected f32, bf16 or f16 (got {other:?})"))),
    };
    let model = long(py, progress, |_| {
        let opts = fairnc::util::device::load_options(device, dtype, seed)?;
        fairnc::registry::load(&name, &opts)
    })?;
    Ok(Model { inner: Arc::new(model), seed })
}

/// Raw little-endian bytes and the shape of an array.
type Array<'py> = (Bound<'py, PyByteArray>, Vec<usize>);

fn array<'py, T: Copy>(py: Python<'py>, values: &[T], shape: Vec<usize>) -> Array<'py> {
    // SAFETY: T is a plain number type (f32 or i64) with no padding; the bytes are copied out.
    let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) };
    (PyByteArray::new(py, bytes), shape)
}

#[pymethods]
impl Model {
    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// What `fairnc info --json` prints, as JSON.
    fn info_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.info()).map_err(anyhow::Error::from).py_err()
    }

    /// Last-layer states of `texts` as `fairnc hidden` computes them: (hidden f32 [N,T,D],
    /// attention_mask i64 [N,T], input_ids i64 [N,T]).
    #[pyo3(signature = (texts, max_len = None, truncate = true, batch_size = 64, features = "hidden", progress = true))]
    #[allow(clippy::too_many_arguments)]
    fn hidden<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        max_len: Option<usize>,
        truncate: bool,
        batch_size: usize,
        features: &str,
        progress: bool,
    ) -> PyResult<(Array<'py>, Array<'py>, Array<'py>)> {
        let model = self.inner.as_ref();
        let head = match features {
            "hidden" => false,
            "head" => true,
            other => {
                return Err(crate::errors::raise(
                    py,
                    "InputError",
                    format!("hidden: features must be hidden or head, not {other:?}"),
                ));
            }
        };
        let (hidden, mask, ids, (n, t, d)) = long(py, progress, |p| {
            if texts.is_empty() {
                anyhow::bail!("hidden: no texts");
            }
            if batch_size == 0 {
                anyhow::bail!("hidden: batch_size must be at least 1");
            }
            let max_len = max_len.unwrap_or(model.max_len());
            // As `fairnc hidden`: at least 2, and longer than the position table means the table.
            if max_len < 2 {
                anyhow::bail!("hidden: max_len must be at least 2, not {max_len}");
            }
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let overflow = if truncate { Overflow::Truncate } else { Overflow::Error };
            let s = hidden_states(model, &refs, max_len, overflow, batch_size, head, p)?;
            let dims = s.hidden.dims3()?;
            Ok((
                s.hidden.flatten_all()?.to_vec1::<f32>()?,
                s.attention_mask.flatten_all()?.to_vec1::<i64>()?,
                s.input_ids.flatten_all()?.to_vec1::<i64>()?,
                dims,
            ))
        })?;
        Ok((array(py, &hidden, vec![n, t, d]), array(py, &mask, vec![n, t]), array(py, &ids, vec![n, t])))
    }
}
