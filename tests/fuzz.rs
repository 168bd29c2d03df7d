//! Fuzzing every reader of outside input (issue 13, item 7): random and mutated valid inputs
//! must give a value or a one-line error naming the file, never a panic, and never an
//! allocation sized by a claim in the input rather than by the input itself.
//!
//! Each property starts from a valid input (a fixture, or one generated from the format's
//! parts) and applies byte edits (flips, inserts of tokens that break parsers, deletions,
//! truncation) or field edits (a size of 2⁶⁴ − 1, a negative count, a wrong type). The
//! default case counts keep this file under a minute in the test profile; a longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test fuzz
//! ```
//!
//! A global allocator guard refuses any single allocation over 1 GiB and says so on stderr
//! before the process aborts: no input in this file is that large, so such a request can
//! only come from a size the reader believed.

use fairnc::collapse::shard::{self, Header, Identity, Shard};
use fairnc::collapse::stats::{ClassStats, Decisions};
use fairnc::data::glue::Task;
use fairnc::model::weights::{TensorFiles, load_tensors_with_metadata};
use fairnc::model::{Exec, Family, LanguageModel, LoadOptions, ModelConfig, Overflow, TextTokenizer};
use fairnc::words::{ClassSet, Policy, WordSet};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// The allocation guard.

/// No reader may ask for more than this in one allocation while fuzzed: every input here is
/// well under a megabyte, so a larger request was sized by a claim in the input.
const ALLOC_LIMIT: usize = 1 << 30;

struct Guard;

thread_local! {
    /// The largest single request this thread made since the last [`largest_allocation`] reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn admit(size: usize) -> bool {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    if size > ALLOC_LIMIT {
        let msg = b"fuzz: refused an allocation over 1 GiB: a reader trusted a size claimed by its input\n";
        // SAFETY: writing a static buffer to stderr; no allocation inside the allocator.
        let _ = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        return false;
    }
    true
}

// SAFETY: every call is forwarded to the system allocator unchanged, or refused with null,
// which the GlobalAlloc contract allows.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !admit(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

/// Runs `f` and returns the largest single allocation this thread requested meanwhile.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------------------
// Shared pieces: case counts, byte edits, error checks.

/// `cases` unless PROPTEST_CASES asks for another count.
fn cases(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    // Findings become plain regression tests below, not seed files.
    c.failure_persistence = None;
    c
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// Strings that break parsers: delimiters, number edge cases, odd Unicode.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1e309",
    "-0",
    "NaN",
    "nan",
    "inf",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "1152921504606846976",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\0",
    "\u{feff}",
    "null",
    "true",
    "[[group]]",
    "é",
    "\u{10FFFF}",
    "\\",
    "\\u0000",
    "\\ud800",
    "#",
    "[MASK]",
    "<mask>",
    "<|endoftext|>",
    "BLANK",
    "stereo",
    "antistereo",
    "  ",
];

#[derive(Debug, Clone)]
enum Edit {
    /// Overwrite one byte.
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Copy a slice to another place (duplicated keys, rows, records).
    Duplicate(usize, usize, usize),
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(TOKENS).prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..6),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        3 => (any::<usize>(), piece()).prop_map(|(i, p)| Edit::Insert(i, p)),
        2 => (any::<usize>(), 1..24usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), 1..64usize, any::<usize>()).prop_map(|(i, n, j)| Edit::Duplicate(i, n, j)),
    ]
}

/// Up to `n` edits; none at all a quarter of the time (the valid input itself is a case).
fn edits(n: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop_oneof![1 => Just(Vec::new()), 3 => prop::collection::vec(edit(), 1..=n)]
}

/// Applies edits at positions taken modulo the current length (so every edit lands).
fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: usize, b: &Vec<u8>| i % (b.len() + 1);
        match e {
            Edit::Set(i, v) => {
                if !b.is_empty() {
                    let i = i % b.len();
                    b[i] = *v;
                }
            }
            Edit::Insert(i, p) => {
                let i = at(*i, &b);
                b.splice(i..i, p.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i, &b);
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Edit::Truncate(i) => {
                let i = at(*i, &b);
                b.truncate(i);
            }
            Edit::Duplicate(i, n, j) => {
                let i = at(*i, &b);
                let end = (i + n).min(b.len());
                let part: Vec<u8> = b[i..end].to_vec();
                let j = at(*j, &b);
                b.splice(j..j, part);
            }
        }
    }
    b
}

/// A reader's error must be one line that names the file (or directory) it read.
fn check_error(err: &anyhow::Error, names: &Path) {
    let msg = format!("{err:#}");
    let name = names.display().to_string();
    assert!(msg.contains(&name), "the error does not name {name}: {msg}");
    assert!(!msg.contains('\n'), "the error is not one line: {msg:?}");
}

/// Text generators: mostly plain words, sometimes anything printable, sometimes a parser-breaker.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,8}( [a-z]{1,8}){0,4}",
        2 => "\\PC{0,16}",
        1 => prop::sample::select(TOKENS).prop_map(str::to_string),
    ]
}

/// JSON values of every type, with the numbers readers must range-check.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            0..4u64,
            Just(u32::MAX as u64),
            Just(1u64 << 32),
            Just(1u64 << 40),
            Just(1u64 << 62),
            Just(u64::MAX),
            any::<u64>()
        ]
        .prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        prop_oneof![Just(-1.0f64), Just(0.5), Just(1e300), Just(-1e-12), any::<f64>()].prop_map(|v| json!(v)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Copies a fixture model directory (small files only) into `dir`.
fn copy_model(family: &str, dir: &Path) {
    for e in std::fs::read_dir(fixture(&format!("models/{family}"))).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().starts_with("expected") {
            continue;
        }
        std::fs::copy(e.path(), dir.join(name)).unwrap();
    }
}

const FAMILIES: [&str; 4] = ["bert", "roberta", "distilbert", "gpt2"];

fn family_of(name: &str) -> Family {
    match name {
        "bert" => Family::Bert,
        "roberta" => Family::Roberta,
        "distilbert" => Family::DistilBert,
        _ => Family::Gpt2,
    }
}

/// A loaded model must also run: encode and one forward pass, with errors (not panics).
fn exercise(model: &LanguageModel) {
    if let Ok(enc) = model.encode(&["the doctor said hello", ""], 16, Overflow::Truncate) {
        let rows: Vec<Vec<u32>> = enc.into_iter().map(|e| e.ids).collect();
        if let Ok(batch) = model.batch(rows) {
            let _ = model.hidden(&batch, Exec::INFER);
        }
    }
}

// ---------------------------------------------------------------------------------------
// safetensors: header length, header JSON (dtype, shape, offsets), body.

/// One fixture checkpoint split into its header JSON and its body.
fn safetensors_parts() -> (serde_json::Map<String, Value>, Vec<u8>) {
    let bytes = std::fs::read(fixture("models/bert/model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header.as_object().unwrap().clone(), bytes[8 + n..].to_vec())
}

#[derive(Debug, Clone)]
enum HeaderEdit {
    Dtype(usize, String),
    Shape(usize, Vec<u64>),
    Offsets(usize, u64, u64),
    Remove(usize),
    /// A second name for one tensor's bytes (aliasing, or gamma/beta beside weight/bias).
    Alias(usize, String),
    Metadata(Value),
}

fn dim() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..70u64, 1 => Just(1u64 << 20), 1 => Just(1u64 << 40), 1 => Just(u64::MAX), 1 => any::<u64>()]
}

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    let dtypes =
        prop::sample::select(vec!["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "F4", "X"]);
    prop_oneof![
        (any::<usize>(), dtypes).prop_map(|(i, d)| HeaderEdit::Dtype(i, d.to_string())),
        (any::<usize>(), prop::collection::vec(dim(), 0..4)).prop_map(|(i, s)| HeaderEdit::Shape(i, s)),
        (any::<usize>(), dim(), dim()).prop_map(|(i, a, b)| HeaderEdit::Offsets(i, a, b)),
        any::<usize>().prop_map(HeaderEdit::Remove),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "bert.embeddings.LayerNorm.gamma",
                "cls.predictions.decoder.weight",
                "bert.embeddings.position_ids",
                "x",
                ""
            ])
        )
            .prop_map(|(i, n)| HeaderEdit::Alias(i, n.to_string())),
        json_value().prop_map(HeaderEdit::Metadata),
    ]
}

#[derive(Debug, Clone)]
struct SafetensorsCase {
    header_edits: Vec<HeaderEdit>,
    /// Replaces the 8-byte header length (2⁶⁰, u64::MAX, one more than the file...).
    length: Option<u64>,
    /// Byte edits inside the header text.
    text_edits: Vec<Edit>,
    /// Cuts the body to this many bytes.
    body_len: Option<usize>,
}

fn safetensors_case() -> impl Strategy<Value = SafetensorsCase> {
    (
        prop::collection::vec(header_edit(), 0..4),
        prop::option::weighted(
            0.2,
            prop_oneof![Just(1u64 << 60), Just(u64::MAX), Just(0u64), Just(1u64), any::<u64>(), 0..20_000u64],
        ),
        prop::option::weighted(0.3, prop::collection::vec(edit(), 1..4)),
        prop::option::weighted(0.2, 0..130_000usize),
    )
        .prop_map(|(header_edits, length, text_edits, body_len)| SafetensorsCase {
            header_edits,
            length,
            text_edits: text_edits.unwrap_or_default(),
            body_len,
        })
}

fn build_safetensors(case: &SafetensorsCase) -> Vec<u8> {
    let (mut header, mut body) = safetensors_parts();
    let names: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
    for e in &case.header_edits {
        let pick = |i: &usize| names[i % names.len()].clone();
        match e {
            HeaderEdit::Dtype(i, d) => {
                if let Some(t) = header.get_mut(&pick(i)) {
                    t["dtype"] = json!(d);
                }
            }
            HeaderEdit::Shape(i, s) => {
                if let Some(t) = header.get_mut(&pick(i)) {
                    t["shape"] = json!(s);
                }
            }
            HeaderEdit::Offsets(i, a, b) => {
                if let Some(t) = header.get_mut(&pick(i)) {
                    t["data_offsets"] = json!([a, b]);
                }
            }
            HeaderEdit::Remove(i) => {
                header.remove(&pick(i));
            }
            HeaderEdit::Alias(i, n) => {
                if let Some(t) = header.get(&pick(i)).cloned() {
                    header.insert(n.clone(), t);
                }
            }
            HeaderEdit::Metadata(v) => {
                header.insert("__metadata__".into(), v.clone());
            }
        }
    }
    let text = apply(serde_json::to_vec(&Value::Object(header)).unwrap(), &case.text_edits);
    if let Some(n) = case.body_len {
        body.truncate(n);
    }
    let mut out = case.length.unwrap_or(text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&body);
    out
}

proptest! {
    #![proptest_config(cases(1024))]

    /// The tensor readers (`TensorFiles::open`, `load_tensors`) and the model loader on top.
    #[test]
    fn fuzz_safetensors(case in safetensors_case()) {
        let tmp = tempfile::tempdir().unwrap();
        copy_model("bert", tmp.path());
        let file = write(tmp.path(), "model.safetensors", &build_safetensors(&case));
        if let Err(e) = TensorFiles::open(tmp.path(), &candle_core::Device::Cpu) {
            check_error(&e, &file);
        }
        if let Err(e) = load_tensors_with_metadata(&file, &candle_core::Device::Cpu) {
            check_error(&e, &file);
        }
        match LanguageModel::load(tmp.path(), &LoadOptions::default()) {
            Ok(m) => exercise(&m),
            Err(e) => check_error(&e, tmp.path()),
        }
    }
}

/// A safetensors file claiming a 1 TB tensor, or a header length of 2⁶⁰, is refused from its
/// size alone: no allocation near the claim is made.
#[test]
fn fuzz_safetensors_huge_claims_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("model.safetensors");
    // 2¹⁸ × 2²⁰ f32 = 1 TiB, with offsets that say so, in a file of a few hundred bytes.
    let tera = 1u64 << 40;
    let header = json!({"w": {"dtype": "F32", "shape": [1u64 << 18, 1u64 << 20], "data_offsets": [0, tera]}});
    let text = serde_json::to_vec(&header).unwrap();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&file, &bytes).unwrap();
    let (r, largest) = largest_allocation(|| TensorFiles::open(tmp.path(), &candle_core::Device::Cpu).map(|_| ()));
    let err = r.expect_err("a 1 TB tensor in a 300-byte file was accepted");
    check_error(&err, &file);
    assert!(largest < 1 << 20, "reading a 1 TB claim allocated {largest} bytes at once");
    let (r, largest) = largest_allocation(|| load_tensors_with_metadata(&file, &candle_core::Device::Cpu).map(|_| ()));
    check_error(&r.expect_err("load_tensors accepted a 1 TB tensor"), &file);
    assert!(largest < 1 << 20, "load_tensors allocated {largest} bytes at once for a 1 TB claim");

    // A header length of 2⁶⁰ bytes.
    let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&file, &bytes).unwrap();
    let (r, largest) = largest_allocation(|| TensorFiles::open(tmp.path(), &candle_core::Device::Cpu).map(|_| ()));
    check_error(&r.expect_err("a header length of 2^60 was accepted"), &file);
    assert!(largest < 1 << 20, "a 2^60 header length allocated {largest} bytes at once");
    let (r, largest) = largest_allocation(|| load_tensors_with_metadata(&file, &candle_core::Device::Cpu).map(|_| ()));
    check_error(&r.expect_err("load_tensors accepted a header length of 2^60"), &file);
    assert!(largest < 1 << 20, "load_tensors allocated {largest} bytes at once for a 2^60 header length");
}

// ---------------------------------------------------------------------------------------
// config.json

/// Every key the config reader interprets, across the four families.
const CONFIG_KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "pad_token_id",
    "dim",
    "n_layers",
    "n_heads",
    "hidden_dim",
    "activation",
    "dropout",
    "attention_dropout",
    "n_embd",
    "n_inner",
    "n_layer",
    "n_head",
    "n_positions",
    "layer_norm_epsilon",
    "activation_function",
    "resid_pdrop",
    "attn_pdrop",
];

fn config_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop_oneof![0..3u64, 1u64 << 20..1u64 << 21, Just(1u64 << 32), Just(1u64 << 62), Just(u64::MAX), any::<u64>()].prop_map(|v| json!(v)),
        1 => prop::sample::select(vec!["bert", "roberta", "distilbert", "gpt2", "gelu", "relu", "gelu_new", "t5"]).prop_map(|s| json!(s)),
        1 => json_value(),
    ]
}

#[derive(Debug, Clone)]
enum ConfigEdit {
    Set(&'static str, Value),
    Remove(&'static str),
}

fn config_edit() -> impl Strategy<Value = ConfigEdit> {
    let key = prop::sample::select(CONFIG_KEYS);
    prop_oneof![
        4 => (key.clone(), config_value()).prop_map(|(k, v)| ConfigEdit::Set(k, v)),
        1 => key.prop_map(ConfigEdit::Remove),
    ]
}

proptest! {
    #![proptest_config(cases(1024))]

    /// `config.json` read alone and as part of loading the fixture model it describes.
    #[test]
    fn fuzz_config_json(family in prop::sample::select(FAMILIES.to_vec()), fields in prop::collection::vec(config_edit(), 0..4), text_edits in edits(3)) {
        let tmp = tempfile::tempdir().unwrap();
        copy_model(family, tmp.path());
        let mut v: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap()).unwrap();
        for f in &fields {
            match f {
                ConfigEdit::Set(k, x) => { v[*k] = x.clone(); }
                ConfigEdit::Remove(k) => { v.as_object_mut().unwrap().remove(*k); }
            }
        }
        let path = write(tmp.path(), "config.json", &apply(serde_json::to_vec_pretty(&v).unwrap(), &text_edits));
        match ModelConfig::from_file(&path) {
            Ok(cfg) => {
                let _ = (cfg.head_dim(), cfg.usable_positions(), cfg.to_saved_json());
            }
            Err(e) => check_error(&e, &path),
        }
        match LanguageModel::load(tmp.path(), &LoadOptions::default()) {
            Ok(m) => exercise(&m),
            Err(e) => check_error(&e, tmp.path()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// tokenizer.json, vocab.txt, vocab.json + merges.txt

/// The texts every tokenizer that loads must encode without a panic.
const SAMPLE_TEXTS: &[&str] =
    &["The doctor said [MASK] was late.", "", " ", "<mask> <s></s>", "naïve café 東京 🙂", "a\tb\nc", "<|endoftext|>"];

fn exercise_tokenizer(t: &TextTokenizer, extra: &str) {
    for text in SAMPLE_TEXTS.iter().copied().chain([extra]) {
        for max_len in [0, 1, 2, 8, 512] {
            if let Ok(e) = t.encode(text, max_len) {
                let _ = t.decode(&e.ids);
            }
            let _ = t.encode_pair(text, "the nurse", max_len);
        }
        let _ = t.tokenize_plain(text);
    }
    let _ = (t.vocab_size(), t.id_to_token(t.pad_id), t.token_to_id("[MASK]"));
}

/// A top-level component of one family's tokenizer.json, replaced by another family's.
#[derive(Debug, Clone)]
struct Swap {
    key: &'static str,
    from: &'static str,
}

fn swap() -> impl Strategy<Value = Swap> {
    (
        prop::sample::select(vec![
            "model",
            "normalizer",
            "pre_tokenizer",
            "post_processor",
            "decoder",
            "added_tokens",
            "padding",
            "truncation",
        ]),
        prop::sample::select(FAMILIES.to_vec()),
    )
        .prop_map(|(key, from)| Swap { key, from })
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn fuzz_tokenizer_json(family in prop::sample::select(FAMILIES.to_vec()), swaps in prop::collection::vec(swap(), 0..3), fields in prop::collection::vec(("[a-z_]{1,6}", json_value()), 0..2), text_edits in edits(4), sample in text()) {
        let tmp = tempfile::tempdir().unwrap();
        let mut v: Value = serde_json::from_slice(&std::fs::read(fixture(&format!("models/{family}/tokenizer.json"))).unwrap()).unwrap();
        for s in &swaps {
            let other: Value = serde_json::from_slice(&std::fs::read(fixture(&format!("models/{}/tokenizer.json", s.from))).unwrap()).unwrap();
            v[s.key] = other[s.key].clone();
        }
        for (k, x) in &fields {
            v["model"][k] = x.clone();
        }
        let path = write(tmp.path(), "tokenizer.json", &apply(serde_json::to_vec_pretty(&v).unwrap(), &text_edits));
        match TextTokenizer::from_dir(tmp.path(), family_of(family), Some(0)) {
            Ok(t) => exercise_tokenizer(&t, &sample),
            Err(e) => check_error(&e, &path),
        }
    }

    #[test]
    fn fuzz_vocab_txt(bert in any::<bool>(), keep in prop::collection::vec(any::<bool>(), 270), extra in prop::collection::vec(text(), 0..6), text_edits in edits(4), lower in prop::option::of(any::<bool>()), sample in text()) {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::read_to_string(fixture("models/bert/vocab.txt")).unwrap();
        // Drop lines (specials included), append odd ones, then edit bytes.
        let mut lines: Vec<String> = base.lines().zip(&keep).filter(|(_, k)| **k || bert).map(|(l, _)| l.to_string()).collect();
        lines.extend(extra);
        let path = write(tmp.path(), "vocab.txt", &apply(lines.join("\n").into_bytes(), &text_edits));
        if let Some(lower) = lower {
            write(tmp.path(), "tokenizer_config.json", json!({"do_lower_case": lower}).to_string().as_bytes());
        }
        match TextTokenizer::from_dir(tmp.path(), Family::Bert, None) {
            Ok(t) => exercise_tokenizer(&t, &sample),
            Err(e) => check_error(&e, &path),
        }
    }

    #[test]
    fn fuzz_vocab_json_merges_txt(roberta in any::<bool>(), vocab_edits in edits(4), merge_edits in edits(4), entries in prop::collection::vec((text(), json_value()), 0..3), merges in prop::collection::vec(text(), 0..4), sample in text()) {
        let tmp = tempfile::tempdir().unwrap();
        let family = if roberta { "roberta" } else { "gpt2" };
        let mut vocab: Value = serde_json::from_slice(&std::fs::read(fixture(&format!("models/{family}/vocab.json"))).unwrap()).unwrap();
        for (k, x) in entries {
            vocab[k] = x;
        }
        let vocab_path = write(tmp.path(), "vocab.json", &apply(serde_json::to_vec(&vocab).unwrap(), &vocab_edits));
        let mut m = std::fs::read_to_string(fixture(&format!("models/{family}/merges.txt"))).unwrap();
        for x in merges {
            m.push_str(&x);
            m.push('\n');
        }
        let merges_path = write(tmp.path(), "merges.txt", &apply(m.into_bytes(), &merge_edits));
        match TextTokenizer::from_dir(tmp.path(), family_of(family), None) {
            Ok(t) => exercise_tokenizer(&t, &sample),
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(msg.contains(&vocab_path.display().to_string()) || msg.contains(&merges_path.display().to_string()), "the error names neither vocab.json nor merges.txt: {msg}");
                assert!(!msg.contains('\n'), "the error is not one line: {msg:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Word sets (TOML / JSON)

#[derive(Debug, Clone)]
struct WordFile {
    name: Option<String>,
    groups: Vec<(String, Vec<String>)>,
    tuples: Vec<Vec<String>>,
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(vec!["he", "she", "man", "woman", "doctor", "nurse", "king", "queen", "actor", "actress", "father", "mother"]).prop_map(str::to_string), 1 => text()]
}

fn word_file() -> impl Strategy<Value = WordFile> {
    (
        prop::option::of(text()),
        prop::collection::vec(
            (
                prop_oneof![Just("male".to_string()), Just("female".to_string()), text()],
                prop::collection::vec(word(), 0..5),
            ),
            0..4,
        ),
        prop::collection::vec(prop::collection::vec(word(), 0..4), 0..4),
    )
        .prop_map(|(name, groups, tuples)| WordFile { name, groups, tuples })
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The file in TOML, with `tuples` written before or after the groups (both are accepted).
fn word_toml(f: &WordFile, tuples_first: bool) -> String {
    let mut out = String::new();
    if let Some(n) = &f.name {
        out.push_str(&format!("name = {}\n", toml_str(n)));
    }
    let tuples = format!(
        "tuples = [{}]\n",
        f.tuples
            .iter()
            .map(|t| format!("[{}]", t.iter().map(|w| toml_str(w)).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if tuples_first && !f.tuples.is_empty() {
        out.push_str(&tuples);
    }
    for (name, words) in &f.groups {
        out.push_str(&format!(
            "[[group]]\nname = {}\nwords = [{}]\n",
            toml_str(name),
            words.iter().map(|w| toml_str(w)).collect::<Vec<_>>().join(", ")
        ));
    }
    if !tuples_first && !f.tuples.is_empty() {
        out.push_str(&tuples);
    }
    out
}

fn word_json(f: &WordFile) -> String {
    json!({
        "name": f.name,
        "group": f.groups.iter().map(|(n, w)| json!({"name": n, "words": w})).collect::<Vec<_>>(),
        "tuples": f.tuples,
    })
    .to_string()
}

static BERT_TOKENIZER: std::sync::OnceLock<TextTokenizer> = std::sync::OnceLock::new();

fn bert_tokenizer() -> &'static TextTokenizer {
    BERT_TOKENIZER.get_or_init(|| TextTokenizer::from_dir(&fixture("models/bert"), Family::Bert, Some(0)).unwrap())
}

proptest! {
    #![proptest_config(cases(2048))]

    /// A word-set file read, then mapped to a vocabulary under both policies.
    #[test]
    fn fuzz_word_set(f in word_file(), as_json in any::<bool>(), tuples_first in any::<bool>(), text_edits in edits(4)) {
        let tmp = tempfile::tempdir().unwrap();
        let (name, text) = if as_json { ("set.json", word_json(&f)) } else { ("set.toml", word_toml(&f, tuples_first)) };
        let path = write(tmp.path(), name, &apply(text.into_bytes(), &text_edits));
        match WordSet::from_file(&path) {
            Ok(set) => {
                for policy in [Policy::WholeWord, Policy::FirstSubword] {
                    if let Ok(classes) = ClassSet::map(&set, bert_tokenizer(), policy) {
                        for c in &classes.classes {
                            let _ = classes.sole_group(c);
                        }
                    }
                }
                let _ = set.fingerprint();
            }
            Err(e) => check_error(&e, &path),
        }
    }
}

// ---------------------------------------------------------------------------------------
// CrowS-Pairs CSV

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn fuzz_crows_csv(columns in prop::sample::subsequence(vec!["", "sent_more", "sent_less", "stereo_antistereo", "bias_type", "annotations"], 3..=6).prop_shuffle(),
                      rows in prop::collection::vec(prop::collection::vec(prop_oneof![text(), prop::sample::select(vec!["stereo", "antistereo", "gender", "race-color", "0", "17"]).prop_map(str::to_string)], 0..7), 0..6),
                      quoted in any::<bool>(), text_edits in edits(5)) {
        let tmp = tempfile::tempdir().unwrap();
        let mut text = columns.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
        text.push_str("\r\n");
        for r in &rows {
            text.push_str(&r.iter().map(|f| if quoted { csv_field(f) } else { f.clone() }).collect::<Vec<_>>().join(","));
            text.push_str("\r\n");
        }
        let path = write(tmp.path(), "crows.csv", &apply(text.into_bytes(), &text_edits));
        match fairnc::data::crows::read(&path) {
            Ok(d) => {
                for p in &d.pairs {
                    let _ = p.ordered();
                }
            }
            Err(e) => check_error(&e, &path),
        }
    }
}

// ---------------------------------------------------------------------------------------
// StereoSet JSON

fn label() -> impl Strategy<Value = Value> {
    prop_oneof![8 => prop::sample::select(vec!["stereotype", "anti-stereotype", "unrelated"]).prop_map(|s| json!(s)), 1 => json_value()]
}

fn cluster() -> impl Strategy<Value = Value> {
    (text(), prop_oneof![Just("The BLANK is here.".to_string()), text()], prop::collection::vec((text(), label()), 0..5), prop::option::weighted(0.1, ("[a-z]{1,6}", json_value())))
        .prop_map(|(target, context, sentences, extra)| {
            let mut c = json!({
                "id": "c1", "target": target, "bias_type": "gender", "context": context,
                "sentences": sentences.into_iter().enumerate().map(|(i, (s, l))| json!({"id": format!("s{i}"), "sentence": s, "gold_label": l, "labels": []})).collect::<Vec<_>>(),
            });
            if let Some((k, v)) = extra {
                c[k] = v;
            }
            c
        })
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn fuzz_stereoset_json(clusters in prop::collection::vec(cluster(), 0..4), text_edits in edits(4)) {
        let tmp = tempfile::tempdir().unwrap();
        let v = json!({"version": "1.0", "data": {"intrasentence": clusters, "intersentence": []}});
        let path = write(tmp.path(), "dev.json", &apply(serde_json::to_vec(&v).unwrap(), &text_edits));
        if let Err(e) = fairnc::data::stereoset::read(&path) {
            check_error(&e, &path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// SEAT JSON

fn category() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (text(), prop::collection::vec(text(), 0..4)).prop_map(|(c, e)| json!({"category": c, "examples": e})),
        1 => json_value(),
    ]
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn fuzz_seat_json(cats in prop::collection::vec(category(), 4), drop in prop::option::of(0..4usize), text_edits in edits(4)) {
        let tmp = tempfile::tempdir().unwrap();
        let keys = ["targ1", "targ2", "attr1", "attr2"];
        let mut v = serde_json::Map::new();
        for (i, (k, c)) in keys.iter().zip(cats).enumerate() {
            if drop != Some(i) {
                v.insert(k.to_string(), c);
            }
        }
        let path = write(tmp.path(), "sent-weat6.jsonl", &apply(serde_json::to_vec(&Value::Object(v)).unwrap(), &text_edits));
        if let Err(e) = fairnc::data::seat::read_test(&path) {
            check_error(&e, &path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// GLUE TSV

/// The header a task's file has in glue_data.
fn glue_header(task: Task) -> &'static str {
    match task {
        Task::Cola => "",
        Task::Sst2 => "sentence\tlabel",
        Task::Mrpc => "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        Task::Stsb => "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
        Task::Qnli => "index\tquestion\tsentence\tlabel",
        Task::Rte | Task::Wnli => "index\tsentence1\tsentence2\tlabel",
    }
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn fuzz_glue_tsv(task in prop::sample::select(Task::ALL.to_vec()),
                     rows in prop::collection::vec(prop::collection::vec(prop_oneof![text(), prop::sample::select(vec!["0", "1", "entailment", "not_entailment", "3.8", "-1e40", "NaN", "*"]).prop_map(str::to_string)], 0..11), 0..6),
                     text_edits in edits(4), limit in prop::option::of(0..8usize)) {
        let tmp = tempfile::tempdir().unwrap();
        let header = glue_header(task);
        let mut text = if header.is_empty() { String::new() } else { format!("{header}\n") };
        for r in &rows {
            text.push_str(&r.join("\t"));
            text.push('\n');
        }
        let path = write(tmp.path(), &format!("{}/dev.tsv", task.dir_name()), &apply(text.into_bytes(), &text_edits));
        match task.load(tmp.path(), "dev") {
            Ok(ex) => {
                let n = ex.len();
                let sub = fairnc::data::glue::subsample(ex, limit);
                prop_assert!(sub.len() <= n);
            }
            Err(e) => check_error(&e, &path),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Experiment TOML

fn toml_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("0.5".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("18446744073709551615".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1e400".to_string()),
        Just("\"3\"".to_string()),
        (0..100u32).prop_map(|v| v.to_string()),
    ]
}

#[derive(Debug, Clone)]
struct ExperimentFile {
    methods: Vec<(String, Vec<String>)>,
    seeds: Vec<String>,
    debias: Vec<(&'static str, String)>,
    audit: Vec<(&'static str, String)>,
    glue: Option<Vec<String>>,
}

fn experiment_file() -> impl Strategy<Value = ExperimentFile> {
    let method = prop_oneof![
        prop::sample::select(vec!["none", "cda", "dropout", "bec", "ase", "contrastive"]).prop_map(str::to_string),
        text()
    ];
    let debias_key =
        prop::sample::select(vec!["steps", "batch_size", "lr", "max_texts", "max_len", "corpus", "words", "unknown"]);
    (
        prop::collection::vec((method, prop::collection::vec(toml_number(), 0..3)), 0..3),
        prop::collection::vec(toml_number(), 0..3),
        prop::collection::vec((debias_key, toml_number()), 0..3),
        prop::collection::vec(
            (prop::sample::select(vec!["quick", "max_texts"]), prop_oneof![toml_number(), Just("true".to_string())]),
            0..2,
        ),
        prop::option::of(prop::collection::vec(
            prop_oneof![prop::sample::select(vec!["rte", "sst2", "stsb", "mnli"]).prop_map(str::to_string), text()],
            0..3,
        )),
    )
        .prop_map(|(methods, seeds, debias, audit, glue)| ExperimentFile { methods, seeds, debias, audit, glue })
}

fn experiment_toml(f: &ExperimentFile, model: &Path) -> String {
    let mut out = format!(
        "name = \"fuzz\"\nmodels = [{}]\nseeds = [{}]\n",
        toml_str(&model.display().to_string()),
        f.seeds.join(", ")
    );
    if let Some(tasks) = &f.glue {
        out.push_str(&format!(
            "[glue]\ntasks = [{}]\nglue_dir = {}\n",
            tasks.iter().map(|t| toml_str(t)).collect::<Vec<_>>().join(", "),
            toml_str(&model.display().to_string())
        ));
    }
    out.push_str("[methods]\n");
    for (m, ls) in &f.methods {
        out.push_str(&format!("{} = [{}]\n", toml_str(m), ls.join(", ")));
    }
    out.push_str("[debias]\n");
    for (k, v) in &f.debias {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out.push_str("[audit]\n");
    for (k, v) in &f.audit {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

proptest! {
    #![proptest_config(cases(2048))]

    /// The experiment grid reader. The model is a local directory, so nothing is fetched.
    #[test]
    fn fuzz_experiment_toml(f in experiment_file(), text_edits in edits(4)) {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(tmp.path(), "grid.toml", &apply(experiment_toml(&f, tmp.path()).into_bytes(), &text_edits));
        match fairnc::experiment::Experiment::load(&path) {
            Ok(e) => {
                for c in &e.cells {
                    prop_assert!(c.lambda.is_finite() && c.lambda >= 0.0, "cell {} has λ {}", c.id(), c.lambda);
                }
            }
            Err(e) => check_error(&e, &path),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shard records (statistics and decisions)

fn identity() -> Identity {
    serde_json::from_value(json!({
        "model": "m", "classes": [5, 7], "class_set": "gender", "target": "same", "features": "hidden", "max_len": 16,
        "corpus": "c", "corpus_texts": 10, "corpus_hash": "h", "heldout": 0.2, "block": 4,
    }))
    .unwrap()
}

fn shard_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop_oneof![Just(0u64), Just(1), Just(3), Just(u64::MAX), any::<u64>()].prop_map(|v| json!(v)),
        1 => prop_oneof![Just(-1i64), Just(i64::MIN)].prop_map(|v| json!(v)),
        1 => json_value(),
    ]
}

#[derive(Debug, Clone)]
struct ShardCase {
    decisions: bool,
    k: usize,
    dim: usize,
    counts: Vec<i64>,
    sums: Vec<i128>,
    /// (JSON pointer into the header, new value).
    header_edits: Vec<(&'static str, Value)>,
    byte_edits: Vec<Edit>,
}

fn shard_case() -> impl Strategy<Value = ShardCase> {
    let pointer = prop::sample::select(vec![
        "/kind",
        "/identity/block",
        "/identity/corpus_texts",
        "/identity/classes",
        "/identity/heldout",
        "/identity/max_len",
        "/blocks",
        "/blocks/0",
        "/next_block",
        "/min_count",
        "/means",
        "/info",
        "/identity",
    ]);
    (
        any::<bool>(),
        1..4usize,
        1..4usize,
        prop::collection::vec(prop_oneof![0..5i64, Just(-1i64), Just(i64::MAX), Just(i64::MIN)], 16),
        prop::collection::vec(prop_oneof![-5..5i128, Just(i128::MAX), Just(i128::MIN)], 16),
        prop::collection::vec((pointer, shard_value()), 0..3),
        prop::option::weighted(0.3, prop::collection::vec(edit(), 1..4)),
    )
        .prop_map(|(decisions, k, dim, counts, sums, header_edits, byte_edits)| ShardCase {
            decisions,
            k,
            dim,
            counts,
            sums,
            header_edits,
            byte_edits: byte_edits.unwrap_or_default(),
        })
}

/// What `collapse` and `collapse merge` do with a shard once it is read.
fn use_shard(s: Shard) {
    match s {
        Shard::Stats(h, stats, w) => {
            let mut sum = stats.clone();
            let _ = sum.merge(&stats);
            let _ = shard::union_blocks(&h.blocks, &h.blocks);
            let _ = h.identity.corpus_texts.div_ceil(h.identity.block);
            for c in 0..stats.num_classes() {
                let _ = (stats.mean(c), stats.variance(c));
            }
            let _ = (stats.positions(), stats.fingerprint(), w.len());
        }
        Shard::Decisions(h, d) => {
            let mut sum = d.clone();
            let _ = sum.merge(&d);
            let _ = shard::union_blocks(&h.blocks, &h.blocks);
            let _ = h.identity.corpus_texts.div_ceil(h.identity.block);
            for (p, a) in d.positions.iter().zip(&d.agree) {
                let _ = *a as f64 / (*p).max(1) as f64;
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn fuzz_shard_records(case in shard_case()) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("stats.safetensors");
        let mut header = serde_json::to_value(Header {
            kind: if case.decisions { "decisions" } else { "stats" }.into(),
            identity: identity(),
            blocks: vec![(0, 2)],
            means: None,
            min_count: None,
            next_block: None,
            info: None,
        }).unwrap();
        for (p, v) in &case.header_edits {
            if let Some(slot) = header.pointer_mut(p) {
                *slot = v.clone();
            }
        }
        let header: Header = match serde_json::from_value(header) {
            Ok(h) => h,
            // A header our own writer could not produce: written as raw metadata below instead.
            Err(_) => return Ok(()),
        };
        if case.decisions {
            let d = Decisions { positions: case.counts[..case.k].iter().map(|&c| c as u64).collect(), agree: case.counts[8..8 + case.k].iter().map(|&c| c as u64).collect() };
            shard::write_decisions(&path, &header, &d).unwrap();
        } else {
            let stats = ClassStats { dim: case.dim, counts: case.counts[..case.k].iter().map(|&c| c as u64).collect(), sums: case.sums[..case.k * case.dim].to_vec(), sq_norms: case.sums[..case.k].to_vec() };
            shard::write_stats(&path, &header, &stats, &vec![0.5; case.k * case.dim]).unwrap();
        }
        if !case.byte_edits.is_empty() {
            let bytes = apply(std::fs::read(&path).unwrap(), &case.byte_edits);
            std::fs::write(&path, bytes).unwrap();
        }
        match shard::read(&path) {
            Ok(s) => use_shard(s),
            Err(e) => check_error(&e, &path),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Findings, each kept as a plain regression test with the input that broke the reader.

fn config_with(family: &str, edits: &[(&str, Value)]) -> Value {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("models/{family}/config.json"))).unwrap()).unwrap();
    for (k, x) in edits {
        v[*k] = x.clone();
    }
    v
}

fn config_error(v: Value) -> String {
    format!("{:#}", ModelConfig::from_value(v).expect_err("the config was accepted"))
}

/// RoBERTa's positions start after pad_token_id + 1: a table no longer than that used to
/// underflow `max_position_embeddings − pad − 1` (a panic in debug builds, 2⁶⁴ − 1 positions in release).
#[test]
fn fuzz_finding_roberta_position_table_shorter_than_its_offset() {
    let msg = config_error(config_with("roberta", &[("max_position_embeddings", json!(2))]));
    assert!(msg.contains("max_position_embeddings 2 leaves no positions"), "{msg}");
}

/// `n_embd` near 2⁶² overflowed `4 · n_embd` (the default n_inner) while the config was read.
#[test]
fn fuzz_finding_gpt2_huge_embedding_width() {
    let msg = config_error(config_with("gpt2", &[("n_embd", json!(1u64 << 62)), ("n_head", json!(1))]));
    assert!(msg.contains("hidden size 4611686018427387904 is larger than any checkpoint"), "{msg}");
}

/// A pad_token_id beyond u32 was cut to its low 32 bits (2³² became id 0) without a word.
#[test]
fn fuzz_finding_pad_token_id_beyond_u32() {
    let msg = config_error(config_with("bert", &[("pad_token_id", json!(1u64 << 32))]));
    assert!(msg.contains("\"pad_token_id\" 4294967296 is not a token id"), "{msg}");
}

/// `num_hidden_layers: 2³¹` beside a two-layer checkpoint built a parameter list with 2³⁵
/// entries before any tensor was compared: refused now from the tensor count, allocating little.
#[test]
fn fuzz_finding_layer_count_beyond_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    copy_model("bert", tmp.path());
    let v = config_with("bert", &[("num_hidden_layers", json!(1u64 << 31))]);
    std::fs::write(tmp.path().join("config.json"), v.to_string()).unwrap();
    let (r, largest) = largest_allocation(|| LanguageModel::load(tmp.path(), &LoadOptions::default()).map(|_| ()));
    let msg = format!("{:#}", r.expect_err("2^31 layers were accepted for a 2-layer checkpoint"));
    assert!(msg.contains("2147483648 layers, but") && msg.contains("model.safetensors holds only"), "{msg}");
    assert!(largest < 16 << 20, "loading allocated {largest} bytes at once");
}

fn shard_header(block: usize) -> Header {
    let mut identity = identity();
    identity.block = block;
    Header {
        kind: "stats".into(),
        identity,
        blocks: vec![(0, 2)],
        means: None,
        min_count: None,
        next_block: None,
        info: None,
    }
}

/// A shard header with block 0 divided by zero in `collapse merge` (`corpus_texts.div_ceil(block)`).
#[test]
fn fuzz_finding_shard_block_size_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("stats.safetensors");
    let stats = ClassStats { dim: 1, counts: vec![1, 2], sums: vec![3, 4], sq_norms: vec![5, 6] };
    shard::write_stats(&path, &shard_header(0), &stats, &[0.5, 0.5]).unwrap();
    let msg = format!("{:#}", shard::read(&path).err().expect("a shard with block size 0 was read"));
    assert!(msg.contains("stats.safetensors: fairnc header has a block size of 0"), "{msg}");
}

/// A negative count was read as a u64 near 2⁶⁴, and merging two such shards overflowed (a panic
/// in debug builds, a wrapped count in release).
#[test]
fn fuzz_finding_shard_negative_count() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("stats.safetensors");
    let stats = ClassStats { dim: 1, counts: vec![1, u64::MAX], sums: vec![3, 4], sq_norms: vec![5, 6] };
    shard::write_stats(&path, &shard_header(4), &stats, &[0.5, 0.5]).unwrap();
    let msg = format!("{:#}", shard::read(&path).err().expect("a shard with a count of -1 was read"));
    assert!(msg.contains("stats.safetensors: tensor counts holds a negative count -1"), "{msg}");
}

/// Decisions with more agreements than positions, or lists of different lengths, were read
/// as they were (agreement rates above 1, or a class silently dropped by `zip`).
#[test]
fn fuzz_finding_decision_counts_inconsistent() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("decisions.safetensors");
    let mut header = shard_header(4);
    header.kind = "decisions".into();
    let meta: std::collections::HashMap<String, String> =
        [("fairnc".to_string(), serde_json::to_string(&header).unwrap())].into();
    for (positions, agree) in [(vec![1i64, 2], vec![2i64, 0]), (vec![1, 2], vec![1])] {
        let dev = candle_core::Device::Cpu;
        let tensors = vec![
            ("positions".to_string(), candle_core::Tensor::from_vec(positions.clone(), positions.len(), &dev).unwrap()),
            ("agree".to_string(), candle_core::Tensor::from_vec(agree.clone(), agree.len(), &dev).unwrap()),
        ];
        fairnc::model::weights::save_tensors_with_metadata(&tensors, &path, meta.clone()).unwrap();
        let msg = format!("{:#}", shard::read(&path).err().expect("inconsistent decisions were read"));
        assert!(msg.contains("decision counts are inconsistent"), "{msg}");
    }
}

/// Merging statistics whose sums overflow is an error, not a panic (debug) or a wrapped sum.
#[test]
fn fuzz_finding_merge_overflow() {
    let mut a = ClassStats { dim: 1, counts: vec![1], sums: vec![i128::MAX], sq_norms: vec![0] };
    let b = a.clone();
    let msg = format!("{:#}", a.merge(&b).expect_err("an overflowing merge was accepted"));
    assert!(msg.contains("statistics overflow when merged"), "{msg}");
    let mut a = ClassStats { dim: 1, counts: vec![u64::MAX / 2 + 1, 0], sums: vec![0, 0], sq_norms: vec![0, 0] };
    let b = ClassStats { dim: 1, counts: vec![0, u64::MAX / 2 + 1], sums: vec![0, 0], sq_norms: vec![0, 0] };
    assert!(a.merge(&b).is_err(), "counts adding up to 2^64 were merged");
}

/// Found by `fuzz_tokenizer_json`: the word "inf" inserted into BERT's tokenizer.json
/// (bytes 105 110 102 at offset 13560009375172575112 mod length) panicked in the reader.
#[test]
fn fuzz_finding_tokenizer_json_with_inf_inserted() {
    let tmp = tempfile::tempdir().unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(fixture("models/bert/tokenizer.json")).unwrap()).unwrap();
    let bytes = apply(serde_json::to_vec_pretty(&v).unwrap(), &[Edit::Insert(13560009375172575112, b"inf".to_vec())]);
    let path = write(tmp.path(), "tokenizer.json", &bytes);
    let err =
        TextTokenizer::from_dir(tmp.path(), Family::Bert, Some(0)).err().expect("a broken tokenizer.json was read");
    check_error(&err, &path);
}

/// Found reading `ParamStore::load` while fuzzing configs: a checkpoint without an LM head and
/// with no layers is only its embeddings, yet the head created for it is `[hidden, hidden]`:
/// 2.6 MB of embeddings with a hidden size of 2¹⁵ asked for a 4 GiB head.
#[test]
fn fuzz_finding_created_head_larger_than_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    copy_model("bert", tmp.path());
    let d = 1usize << 15;
    let v = config_with(
        "bert",
        &[
            ("num_hidden_layers", json!(0)),
            ("hidden_size", json!(d)),
            ("vocab_size", json!(1)),
            ("max_position_embeddings", json!(2)),
            ("num_attention_heads", json!(1)),
        ],
    );
    std::fs::write(tmp.path().join("config.json"), v.to_string()).unwrap();
    let dev = candle_core::Device::Cpu;
    let zeros = |rows: usize| candle_core::Tensor::zeros((rows, d), candle_core::DType::F32, &dev).unwrap();
    let tensors = vec![
        ("bert.embeddings.word_embeddings.weight".to_string(), zeros(1)),
        ("bert.embeddings.position_embeddings.weight".to_string(), zeros(2)),
        ("bert.embeddings.token_type_embeddings.weight".to_string(), zeros(2)),
        (
            "bert.embeddings.LayerNorm.weight".to_string(),
            candle_core::Tensor::ones(d, candle_core::DType::F32, &dev).unwrap(),
        ),
        (
            "bert.embeddings.LayerNorm.bias".to_string(),
            candle_core::Tensor::zeros(d, candle_core::DType::F32, &dev).unwrap(),
        ),
    ];
    fairnc::model::weights::save_tensors(&tensors, &tmp.path().join("model.safetensors")).unwrap();
    let (r, largest) = largest_allocation(|| LanguageModel::load(tmp.path(), &LoadOptions::default()).map(|_| ()));
    let msg = format!("{:#}", r.expect_err("a 4 GiB head was created for a 2.6 MB checkpoint"));
    // A config with no layers is now refused before the weights are read; the head bound in
    // `ParamStore::load` stays as the second line of defence. Either way nothing large is allocated.
    assert!(msg.contains("number of layers is 0") || msg.contains("is larger than the whole checkpoint"), "{msg}");
    assert!(largest < 64 << 20, "loading allocated {largest} bytes at once");
}

/// Found by the longer run of `fuzz_tokenizer_json`: a TemplateProcessing post-processor whose
/// template names a special token missing from its `special_tokens` loaded, then panicked in
/// tokenizers at the first encode ("no entry found for key").
#[test]
fn fuzz_finding_template_names_an_undefined_special_token() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v: Value = serde_json::from_slice(&std::fs::read(fixture("models/bert/tokenizer.json")).unwrap()).unwrap();
    v["post_processor"]["special_tokens"].as_object_mut().unwrap().remove("[CLS]");
    let path = write(tmp.path(), "tokenizer.json", &serde_json::to_vec_pretty(&v).unwrap());
    let err = TextTokenizer::from_dir(tmp.path(), Family::Bert, Some(0))
        .err()
        .expect("a template naming an undefined special token was read");
    check_error(&err, &path);
    assert!(format!("{err:#}").contains("uses special token \"[CLS]\""), "{err:#}");
    // The input the fuzzer shrank to: DistilBERT's file with GPT-2's model and padding, and a "0" inserted.
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(fixture("models/distilbert/tokenizer.json")).unwrap()).unwrap();
    let gpt2: Value = serde_json::from_slice(&std::fs::read(fixture("models/gpt2/tokenizer.json")).unwrap()).unwrap();
    v["padding"] = gpt2["padding"].clone();
    v["model"] = gpt2["model"].clone();
    let path = write(
        tmp.path(),
        "tokenizer.json",
        &apply(serde_json::to_vec_pretty(&v).unwrap(), &[Edit::Insert(1074115693767370554, b"0".to_vec())]),
    );
    match TextTokenizer::from_dir(tmp.path(), Family::DistilBert, Some(0)) {
        Ok(t) => exercise_tokenizer(&t, "a"),
        Err(e) => check_error(&e, &path),
    }
}

/// Found by a PROPTEST_CASES=20000 run of `fuzz_word_set`: an unknown key holding a newline
/// (`{"g\n": 1}`) was echoed into the error, which then ran over two lines.
#[test]
fn fuzz_finding_word_set_error_with_a_newline_in_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "set.json", br#"{"g\n": 1, "group": [{"name": "male", "words": ["he"]}]}"#);
    let err = WordSet::from_file(&path).expect_err("an unknown key was accepted");
    check_error(&err, &path);
}

/// Found by `fuzz_word_set` (about one run in five): a set named `"\n"` with a group named
/// twice put the name's newline into the error, which then ran over two lines.
#[test]
fn fuzz_finding_word_set_error_with_a_newline_in_the_name() {
    let tmp = tempfile::tempdir().unwrap();
    let text =
        br#"{"name": "\n", "group": [{"name": "female", "words": ["she"]}, {"name": "female", "words": ["her"]}]}"#;
    let path = write(tmp.path(), "set.json", text);
    let err = WordSet::from_file(&path).expect_err("a group named twice was accepted");
    check_error(&err, &path);
}
