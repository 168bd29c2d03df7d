//! Checkpoint formats users have: PyTorch `.bin` (single and sharded), f16 and bf16
//! safetensors, and computing in bf16. Fixtures: tools/fixtures/make_format_fixtures.py.

mod common;

use candle_core::DType;
use common::*;
use fairnc::model::{Exec, LanguageModel, LoadOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-4;

fn formats(rel: &str) -> PathBuf {
    fixture(&format!("formats/{rel}"))
}

fn load_as(dir: &Path, dtype: DType) -> LanguageModel {
    LanguageModel::load(dir, &LoadOptions { dtype, ..Default::default() })
        .unwrap_or_else(|e| panic!("loading {} in {dtype:?}: {e:#}", dir.display()))
}

/// Hidden states `[B, T, D]` and logits `[B, T, V]` of the expected rows.
fn outputs(m: &LanguageModel, rows: &[Vec<u32>]) -> (candle_core::Tensor, candle_core::Tensor) {
    let hidden = m.hidden(&m.batch(rows.to_vec()).unwrap(), Exec::INFER).unwrap();
    let (b, t, _) = hidden.dims3().unwrap();
    let positions: Vec<(usize, usize)> = (0..b).flat_map(|i| (0..t).map(move |j| (i, j))).collect();
    let logits = m.logits_at(&hidden, &positions, Exec::INFER).unwrap().reshape((b, t, ())).unwrap();
    (hidden, logits)
}

fn values(t: &candle_core::Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The error of loading `dir`, checked to be one line.
fn load_err(dir: &Path) -> String {
    match LanguageModel::load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(!msg.contains('\n'), "not one line: {msg}");
            msg
        }
    }
}

/// A model directory with the tiny BERT's config and tokenizer and `bin` as its only weights.
fn bert_with_bin(bin: &[u8]) -> tempfile::TempDir {
    let tmp = copy_dir(&model_dir("bert"));
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin"), bin).unwrap();
    tmp
}

/// The entries of a zip archive, in order: (name, bytes).
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_string(), data)
        })
        .collect()
}

fn rezip(entries: &[(String, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        // torch keeps the pickle and metadata stored too; only the method under test varies.
        w.start_file(name, zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn bert_bin() -> Vec<u8> {
    std::fs::read(formats("bert-bin/pytorch_model.bin")).unwrap()
}

#[test]
fn pytorch_bin_loads_bit_identical_to_safetensors_and_matches_transformers() {
    for family in ["bert", "gpt2"] {
        let reference = load(&model_dir(family));
        let exp = Expected::read(&model_dir(family));
        let rows = exp.rows();
        let (want_h, want_l) = outputs(&reference, &rows);
        for variant in ["bin", "bin-sharded"] {
            let dir = formats(&format!("{family}-{variant}"));
            let m = load(&dir);
            // The stored tied decoder equals the embeddings (no note), buffers are skipped.
            assert!(m.params.notes.is_empty(), "{family}-{variant}: {:?}", m.params.notes);
            assert_eq!(m.params.vars.keys().collect::<Vec<_>>(), reference.params.vars.keys().collect::<Vec<_>>());
            for (name, var) in &m.params.vars {
                let want = &reference.params.vars[name];
                assert!(values(var.as_tensor()) == values(want.as_tensor()), "{family}-{variant}: {name} differs");
            }
            let (h, l) = outputs(&m, &rows);
            assert!(
                values(&h) == values(&want_h) && values(&l) == values(&want_l),
                "{family}-{variant}: outputs differ"
            );
            let (eh, el) =
                (max_err_masked(&h, &exp.tensors["hidden"], &rows), max_err_masked(&l, &exp.tensors["logits"], &rows));
            eprintln!("{family}-{variant:<12} max |Δhidden| = {eh:.2e}   max |Δlogits| = {el:.2e}");
            assert!(eh <= TOL && el <= TOL, "{family}-{variant}: {eh} {el}");
        }
    }
}

#[test]
fn half_precision_safetensors_match_transformers_on_upcast_weights() {
    for family in ["bert", "gpt2"] {
        for tag in ["f16", "bf16"] {
            let dir = formats(&format!("{family}-{tag}"));
            let m = load(&dir);
            assert_eq!(m.dtype(), DType::F32);
            let exp = Expected::read(&dir);
            let rows = exp.rows();
            let (h, l) = outputs(&m, &rows);
            let (eh, el) =
                (max_err_masked(&h, &exp.tensors["hidden"], &rows), max_err_masked(&l, &exp.tensors["logits"], &rows));
            eprintln!("{family}-{tag:<5} max |Δhidden| = {eh:.2e}   max |Δlogits| = {el:.2e}");
            assert!(eh <= TOL && el <= TOL, "{family}-{tag}: {eh} {el}");
        }
    }
}

#[test]
fn malicious_pickles_are_refused_naming_file_and_global() {
    for (file, global) in [("posix-system.bin", "posix.system"), ("builtins-eval.bin", "builtins.eval")] {
        let tmp = bert_with_bin(&std::fs::read(formats(&format!("malicious/{file}"))).unwrap());
        let bin = tmp.path().join("pytorch_model.bin");
        let want =
            format!("{}: the pickle asks to run {global}; fairnc reads tensor data only, refusing it", bin.display());
        assert_eq!(load_err(tmp.path()), want);
        let out = fairnc(&["info", "--model", tmp.path().to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end(), format!("error: {want}"));
    }
}

#[test]
fn safetensors_take_precedence_over_a_bin_beside_them() {
    // The .bin beside the safetensors would be refused; it is never opened.
    let tmp = copy_dir(&model_dir("bert"));
    std::fs::copy(formats("malicious/posix-system.bin"), tmp.path().join("pytorch_model.bin")).unwrap();
    let m = load(tmp.path());
    assert!(m.params.vars.len() > 10);
}

#[test]
fn truncated_or_corrupt_bins_are_errors_naming_the_file() {
    let good = bert_bin();
    let check = |bytes: &[u8], what: &str, expect: &str| {
        let tmp = bert_with_bin(bytes);
        let e = load_err(tmp.path());
        let name = tmp.path().join("pytorch_model.bin").display().to_string();
        assert!(e.starts_with(&format!("{name}: ")), "{what}: {e}");
        assert!(e.contains(expect), "{what}: {e}");
    };
    for n in [0, 3, 100, good.len() / 2, good.len() - 1] {
        let e = if n < 4 { "not a PyTorch checkpoint" } else { "not a valid PyTorch zip archive" };
        check(&good[..n], &format!("cut at {n} bytes"), e);
    }
    // A flipped bit in a weight (the LayerNorm's, storage 3): caught by the storage's checksum.
    let entries = unzip(&good);
    let data = &entries.iter().find(|(n, _)| n.ends_with("/data/3")).unwrap().1;
    let at = good.windows(data.len()).position(|w| w == &data[..]).unwrap();
    let mut bytes = good.clone();
    bytes[at + 1] ^= 0x10;
    check(&bytes, "a flipped bit", "does not match its checksum");
    // A pickle cut short, in a valid archive.
    let mut entries = unzip(&good);
    let pkl = entries.iter_mut().find(|(n, _)| n.ends_with("data.pkl")).unwrap();
    pkl.1.truncate(pkl.1.len() / 2);
    check(&rezip(&entries, zip::CompressionMethod::Stored), "a cut pickle", "not a valid pickle");
    // A storage shorter than its tensor.
    let mut entries = unzip(&good);
    let storage = entries.iter_mut().find(|(n, _)| n.ends_with("/data/0")).unwrap();
    storage.1.truncate(storage.1.len() - 4);
    check(&rezip(&entries, zip::CompressionMethod::Stored), "a short storage", "outside the");
    // Compressed tensor data cannot be read in place.
    check(&rezip(&unzip(&good), zip::CompressionMethod::Deflated), "deflated", "is compressed");
    // torch < 1.6's format: a bare pickle stream, starting with its magic number.
    check(
        b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.",
        "legacy",
        "legacy (pre-1.6, non-zip) format",
    );
}

#[test]
fn non_finite_weights_in_a_bin_are_refused() {
    let mut entries = unzip(&bert_bin());
    let (_, data) = entries.iter_mut().find(|(n, _)| n.ends_with("/data/3")).unwrap();
    data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let tmp = bert_with_bin(&rezip(&entries, zip::CompressionMethod::Stored));
    let e = load_err(tmp.path());
    assert!(e.contains("pytorch_model.bin: tensor ") && e.contains(" holds NaN"), "{e}");
}

#[test]
fn only_float_dtypes_are_accepted() {
    let e = LanguageModel::load(&model_dir("bert"), &LoadOptions { dtype: DType::F64, ..Default::default() });
    let e = format!("{:#}", e.err().expect("f64 accepted"));
    assert!(e.contains("F64") && e.contains("f32, bf16 or f16"), "{e}");
}

/// Largest |f32 − `dtype`| over real positions, and the largest |f32| value, of hidden states
/// and logits.
fn half_errors(dir: &Path, rows: &[Vec<u32>], dtype: DType) -> [(f32, f32); 2] {
    let (h32, l32) = outputs(&load_as(dir, DType::F32), rows);
    let m = load_as(dir, dtype);
    assert_eq!(m.dtype(), dtype);
    let (h, l) = outputs(&m, rows);
    assert_eq!((h.dtype(), l.dtype()), (DType::F32, DType::F32), "outputs cross the boundary in f32");
    let scale = |t: &candle_core::Tensor| max_err_masked(t, &t.zeros_like().unwrap(), rows);
    [(max_err_masked(&h, &h32, rows), scale(&h32)), (max_err_masked(&l, &l32, rows), scale(&l32))]
}

/// The tolerance `LoadOptions::dtype` documents: computing in bf16 moves hidden states and
/// logits by at most 3% of the largest |value| the f32 computation gives. Measured: 0.70–2.85%
/// (hidden) and 0.84–2.25% (logits) on the nine tiny families and MiniLM (the rotary decoders
/// highest, Mistral's hidden states at 2.85%); f16 about 10× less (0.09–0.27%).
const BF16_REL_TOL: f32 = 3e-2;
const F16_REL_TOL: f32 = 5e-3;

#[test]
fn half_precision_compute_stays_within_its_tolerance() {
    let minilm = fairnc::registry::resolve("minilm").unwrap();
    let decoders = ["llama", "mistral", "qwen2", "gpt_neox", "opt"];
    let cases: Vec<(String, PathBuf, PathBuf)> = FAMILIES
        .iter()
        .chain(&decoders)
        .map(|f| (f.to_string(), model_dir(f), model_dir(f)))
        .chain([("minilm".to_string(), minilm, fixture("minilm"))])
        .collect();
    for (name, dir, exp) in cases {
        let rows = Expected::read(&exp).rows();
        for (dtype, tol) in [(DType::BF16, BF16_REL_TOL), (DType::F16, F16_REL_TOL)] {
            let [(dh, sh), (dl, sl)] = half_errors(&dir, &rows, dtype);
            let (rh, rl) = (dh / sh, dl / sl);
            eprintln!(
                "{name:<10} {dtype:?}: max |Δhidden| = {dh:.2e} ({:.2}% of {sh:.2})   max |Δlogits| = {dl:.2e} ({:.2}% of {sl:.2})",
                100.0 * rh,
                100.0 * rl
            );
            assert!(rh <= tol && rl <= tol, "{name} in {dtype:?}: relative errors {rh:.3e} {rl:.3e} over {tol:e}");
        }
    }
}
