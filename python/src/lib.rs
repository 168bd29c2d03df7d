//! `fairnc._fairnc`, the Rust core of the Python package `fairnc`: each function is a thin skin
//! over one library stage. Options arrive as a JSON object laid over the stage's config defaults
//! ([`options`]), results leave as the JSON the CLI writes (the Python side wraps it), arrays as
//! little-endian bytes with their shape (no numpy C API, so one abi3 wheel serves every Python).
//! Long calls release the GIL, draw progress on stderr and stop on Ctrl-C ([`call`]).

mod call;
mod errors;
mod model;
mod nc3;
mod options;
mod stages;

use pyo3::prelude::*;

#[pymodule]
fn _fairnc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    call::install_background();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(model::load, m)?)?;
    m.add_function(wrap_pyfunction!(stages::collapse, m)?)?;
    m.add_function(wrap_pyfunction!(stages::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(stages::audit, m)?)?;
    m.add_function(wrap_pyfunction!(stages::debias, m)?)?;
    m.add_function(wrap_pyfunction!(stages::project, m)?)?;
    m.add_function(wrap_pyfunction!(stages::glue, m)?)?;
    m.add_function(wrap_pyfunction!(stages::defaults, m)?)?;
    nc3::register(m)?;
    Ok(())
}
