//! Numeric parity with `transformers` on tiny random checkpoints of every family
//! (fixtures written by tools/fixtures/make_model_fixtures.py).

mod common;

use common::*;
use fairnc::model::{Exec, Overflow};

const TOL: f32 = 1e-4;

fn check_family(family: &str, dir: &std::path::Path) -> (f32, f32) {
    let m = load(dir);
    let exp = Expected::read(&model_dir(family));
    let rows = exp.rows();
    let texts: Vec<&str> = exp.sentences.iter().map(String::as_str).collect();
    let enc = m.encode(&texts, m.max_len(), Overflow::Error).unwrap();
    for (i, (e, r)) in enc.iter().zip(&rows).enumerate() {
        assert_eq!(&e.ids, r, "{family}: token ids of sentence {i} differ from transformers");
    }
    let batch = m.batch(rows.clone()).unwrap();
    let hidden = m.hidden(&batch, Exec::INFER).unwrap();
    let h_err = max_err_masked(&hidden, &exp.tensors["hidden"], &rows);
    let (b, t, _) = hidden.dims3().unwrap();
    let positions: Vec<(usize, usize)> = (0..b).flat_map(|i| (0..t).map(move |j| (i, j))).collect();
    let logits = m.logits_at(&hidden, &positions, Exec::INFER).unwrap();
    let logits = logits.reshape((b, t, ())).unwrap();
    let l_err = max_err_masked(&logits, &exp.tensors["logits"], &rows);
    (h_err, l_err)
}

#[test]
fn every_family_matches_transformers() {
    for family in FAMILIES {
        let (h, l) = check_family(family, &model_dir(family));
        eprintln!("{family:<10} max |Δhidden| = {h:.2e}   max |Δlogits| = {l:.2e}");
        assert!(h <= TOL, "{family}: hidden error {h}");
        assert!(l <= TOL, "{family}: logits error {l}");
    }
}

#[test]
fn training_graph_matches_inference_graph() {
    // The composed (differentiable) LayerNorm and softmax must compute what the fused ones do.
    for family in FAMILIES {
        let m = load(&model_dir(family));
        let rows = Expected::read(&model_dir(family)).rows();
        let batch = m.batch(rows.clone()).unwrap();
        let a = m.hidden(&batch, Exec::INFER).unwrap();
        let b = m.hidden(&batch, Exec { dropout: false, grad: true }).unwrap();
        let e = max_err_masked(&a, &b, &rows);
        assert!(e < 1e-5, "{family}: {e}");
    }
}

#[test]
fn slow_tokenizer_files_give_the_same_ids() {
    for family in FAMILIES {
        let tmp = copy_dir(&model_dir(family));
        std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
        let (h, l) = check_family(family, tmp.path());
        assert!(h <= TOL && l <= TOL, "{family}: {h} {l}");
    }
}

/// A text's hidden states are bit-for-bit the same alone or in any batch (statistics then do
/// not depend on batch size or sharding).
#[test]
fn batching_does_not_change_results() {
    let minilm = fairnc::registry::resolve("minilm").unwrap();
    for (family, dir, exp) in
        FAMILIES.iter().map(|f| (*f, model_dir(f), model_dir(f))).chain([("minilm", minilm, fixture("minilm"))])
    {
        let m = load(&dir);
        let rows = Expected::read(&exp).rows();
        let all = m.hidden(&m.batch(rows.clone()).unwrap(), Exec::INFER).unwrap();
        for (i, r) in rows.iter().enumerate() {
            let one = m.hidden(&m.batch(vec![r.clone()]).unwrap(), Exec::INFER).unwrap();
            let a: Vec<f32> =
                all.get(i).unwrap().narrow(0, 0, r.len()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = one.get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert!(a == b, "{family} row {i}: batched and alone differ");
        }
    }
}
