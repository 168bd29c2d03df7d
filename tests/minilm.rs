//! Parity with `transformers` on the real all-MiniLM-L6-v2, fetched by the tool itself
//! (the fixture holds only the sentences and the hidden states transformers computed).

mod common;

use common::*;
use fairnc::model::{Exec, Overflow};

#[test]
fn minilm_matches_transformers() {
    let dir = fairnc::registry::resolve("minilm").expect("fetching the minilm bundle");
    let m = load(&dir);
    assert!(m.params.new_head, "MiniLM ships without an MLM head");
    let exp = Expected::read(&fixture("minilm"));
    let rows = exp.rows();
    let texts: Vec<&str> = exp.sentences.iter().map(String::as_str).collect();
    // MiniLM's tokenizer.json pads every input to 128; ours must not.
    let enc = m.encode(&texts, m.max_len(), Overflow::Error).unwrap();
    for (e, r) in enc.iter().zip(&rows) {
        assert_eq!(&e.ids, r);
    }
    let h = m.hidden(&m.batch(rows.clone()).unwrap(), Exec::INFER).unwrap();
    let err = max_err_masked(&h, &exp.tensors["hidden"], &rows);
    eprintln!("minilm max |Δhidden| = {err:.2e}");
    assert!(err <= 1e-4, "{err}");
}
