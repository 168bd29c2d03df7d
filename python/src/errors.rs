//! A library error → the Python exception of `fairnc.errors` its kind calls for, carrying the
//! CLI's one-line message. The classes live in Python because they inherit twice (`fairnc.Error`
//! and the matching built-in), which a Rust-defined exception cannot.

use pyo3::prelude::*;
use pyo3::types::PyType;

/// The exception class (by name in `fairnc.errors`) for an error: a missing path is an
/// `io::Error` of kind `NotFound` in the chain (the library's own checks make one too).
fn kind(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::NotFound => "FileNotFound",
                std::io::ErrorKind::PermissionDenied => "PermissionDenied",
                _ => "Error",
            };
        }
    }
    "InputError"
}

/// The CLI's one-line message of an error.
pub fn message(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

pub fn to_py(e: anyhow::Error) -> PyErr {
    Python::attach(|py| raise(py, kind(&e), message(&e)))
}

/// A `fairnc.errors.<class>` exception with `msg`.
pub fn raise(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match py.import("fairnc.errors").and_then(|m| m.getattr(class)).and_then(|c| Ok(c.cast_into::<PyType>()?)) {
        Ok(class) => PyErr::from_type(class, msg),
        Err(e) => e,
    }
}

/// `?` on library results inside `#[pyfunction]`s.
pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for anyhow::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
