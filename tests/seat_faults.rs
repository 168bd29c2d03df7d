//! SEAT on bad input: a sentence that tokenizes to nothing, a test comparing a set with itself,
//! and associations that leave the effect size undefined are one-line errors naming the test,
//! never a panic and never a NaN effect size marked significant.

mod common;

use fairnc::bench::seat::{run_test, score};
use fairnc::data::seat::{Category, SeatTest};
use fairnc::util::progress::Silent;
use std::collections::HashMap;

fn cat(name: &str, examples: &[&str]) -> Category {
    Category { category: name.into(), examples: examples.iter().map(|s| s.to_string()).collect() }
}

fn test(targ1: &[&str], targ2: &[&str], attr1: &[&str], attr2: &[&str]) -> SeatTest {
    SeatTest {
        name: "t".into(),
        targ1: cat("X", targ1),
        targ2: cat("Y", targ2),
        attr1: cat("A", attr1),
        attr2: cat("B", attr2),
    }
}

#[test]
fn a_sentence_that_tokenizes_to_nothing_is_named() {
    // GPT-2's tokenizer adds no special tokens: the empty sentence has no token to mean-pool.
    let model = common::load(&common::model_dir("gpt2"));
    let t = test(
        &["This is math.", "That is algebra."],
        &["This is poetry.", ""],
        &["This is a man."],
        &["This is a woman."],
    );
    let e = format!("{:#}", score(&model, &[t], 4, 0, &Silent).unwrap_err());
    assert!(e.contains("SEAT test t, set targ2 (Y): sentence \"\" tokenizes to nothing"), "{e}");
}

#[test]
fn identical_sets_are_refused_before_encoding() {
    let model = common::load(&common::model_dir("bert"));
    let t = test(
        &["This is math.", "That is algebra."],
        &["This is poetry.", "That is art."],
        &["This is a man.", "Here is a boy."],
        &["Here is a boy.", "This is a man."],
    );
    let e = format!("{:#}", score(&model, &[t], 4, 0, &Silent).unwrap_err());
    assert!(e.contains("SEAT test t: attr1 (A) and attr2 (B) hold the same sentences"), "{e}");
    let t = test(
        &["This is math.", "That is algebra."],
        &["That is algebra.", "This is math."],
        &["This is a man."],
        &["This is a woman."],
    );
    let e = format!("{:#}", score(&model, &[t], 4, 0, &Silent).unwrap_err());
    assert!(e.contains("SEAT test t: targ1 (X) and targ2 (Y) hold the same sentences"), "{e}");
}

#[test]
fn an_undefined_effect_size_is_an_error_not_nan() {
    // Every target sentence has the same encoding: s(w) is the same for all, std 0, d = 0/0.
    let t = test(&["x1", "x2"], &["y1", "y2"], &["a"], &["b"]);
    let mut enc: HashMap<String, Vec<f64>> = HashMap::new();
    for s in ["x1", "x2", "y1", "y2"] {
        enc.insert(s.into(), vec![1.0, 0.0]);
    }
    enc.insert("a".into(), vec![0.6, 0.8]);
    enc.insert("b".into(), vec![0.0, 1.0]);
    let e = run_test(&t, &enc, 0).unwrap_err().to_string();
    assert!(e.contains("SEAT test t: effect size NaN") && e.contains("undefined"), "{e}");
    // A non-finite encoding (a model with NaN weights) is named, not averaged into NaN.
    enc.insert("x1".into(), vec![f64::NAN, 0.0]);
    let e = run_test(&t, &enc, 0).unwrap_err().to_string();
    assert!(e.contains("SEAT test t: an association s(w) is NaN"), "{e}");
    // The same test with distinct encodings is defined and finite.
    enc.insert("x1".into(), vec![0.8, 0.6]);
    let s = run_test(&t, &enc, 0).unwrap();
    assert!(s.effect_size.is_finite() && s.p_value.is_finite() && s.exact, "{s:?}");
}

#[test]
fn a_model_with_nan_weights_is_refused_at_load_and_zero_states_name_the_sentence() {
    // NaN weights never reach SEAT: loading refuses them, naming the tensor.
    let dir = common::copy_dir(&common::model_dir("bert"));
    let path = dir.path().join("model.safetensors");
    let original = fairnc::model::weights::load_tensors(&path, &candle_core::Device::Cpu).unwrap();
    let mut tensors = original.clone();
    let w = tensors.get_mut("bert.embeddings.LayerNorm.weight").unwrap();
    *w = (w.ones_like().unwrap() * f64::NAN).unwrap();
    candle_core::safetensors::save(&tensors.into_iter().collect::<std::collections::HashMap<_, _>>(), &path).unwrap();
    let e = match fairnc::model::LanguageModel::load(dir.path(), &Default::default()) {
        Ok(_) => panic!("a model with NaN weights loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("bert.embeddings.LayerNorm.weight holds NaN"), "{e}");
    // A last LayerNorm of zeros makes every hidden state zero: finite, but with no direction to
    // normalise; SEAT names the sentence instead of dividing by zero.
    let mut tensors = original;
    for name in ["bert.encoder.layer.1.output.LayerNorm.weight", "bert.encoder.layer.1.output.LayerNorm.bias"] {
        let w = tensors.get_mut(name).unwrap();
        *w = w.zeros_like().unwrap();
    }
    candle_core::safetensors::save(&tensors.into_iter().collect::<std::collections::HashMap<_, _>>(), &path).unwrap();
    let model = common::load(dir.path());
    let t = test(
        &["This is math.", "That is algebra."],
        &["This is poetry.", "That is art."],
        &["This is a man."],
        &["This is a woman."],
    );
    let e = format!("{:#}", score(&model, &[t], 4, 0, &Silent).unwrap_err());
    // Which sentence is named depends on the length-sorted batch order; each is named with its set.
    assert!(
        e.starts_with("SEAT test t, set ")
            && e.contains(": sentence \"")
            && e.contains("the model's mean-pooled hidden state has norm 0"),
        "{e}"
    );
}
