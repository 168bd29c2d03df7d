//! Shared helpers for integration tests: fixture paths, expected tensors, comparisons.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use fairnc::model::{LanguageModel, LoadOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FAMILIES: [&str; 4] = ["bert", "roberta", "distilbert", "gpt2"];

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// `../shared/data`, the reference copies beside the checkout.
pub fn shared_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

pub fn model_dir(family: &str) -> PathBuf {
    fixture(&format!("models/{family}"))
}

pub fn load(dir: &Path) -> LanguageModel {
    LanguageModel::load(dir, &LoadOptions::default()).unwrap_or_else(|e| panic!("loading {}: {e:#}", dir.display()))
}

pub struct Expected {
    pub sentences: Vec<String>,
    pub tensors: BTreeMap<String, Tensor>,
}

impl Expected {
    pub fn read(dir: &Path) -> Self {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        let sentences = json["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        let tensors = fairnc::model::weights::load_tensors(&dir.join("expected.safetensors"), &Device::Cpu).unwrap();
        Expected { sentences, tensors }
    }

    /// The unpadded token ids of each row.
    pub fn rows(&self) -> Vec<Vec<u32>> {
        let ids: Vec<Vec<i64>> = self.tensors["input_ids"].to_vec2().unwrap();
        let mask: Vec<Vec<i64>> = self.tensors["attention_mask"].to_vec2().unwrap();
        ids.iter()
            .zip(&mask)
            .map(|(r, m)| r.iter().zip(m).filter(|(_, m)| **m == 1).map(|(i, _)| *i as u32).collect())
            .collect()
    }
}

/// Max |a − b| over the real (unpadded) positions of `[B, T, ...]` tensors.
pub fn max_err_masked(a: &Tensor, b: &Tensor, rows: &[Vec<u32>]) -> f32 {
    let mut worst = 0f32;
    for (i, r) in rows.iter().enumerate() {
        let x = a.get(i).unwrap().narrow(0, 0, r.len()).unwrap();
        let y = b.get(i).unwrap().narrow(0, 0, r.len()).unwrap();
        let e = x.sub(&y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        worst = worst.max(e);
    }
    worst
}

/// Runs the built binary with progress bars off.
pub fn fairnc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fairnc")).args(args).env("FAIRNC_NO_PROGRESS", "1").output().unwrap()
}

/// A copy of a fixture model directory that a test may modify.
pub fn copy_dir(src: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
        }
    }
    tmp
}
