//! The NC3 regularizer's value against the formula evaluated independently in float64 numpy
//! (tools/fixtures/make_nc3_fixture.py → tests/fixtures/train/nc3-reference.json): centring by
//! the unweighted mean of the seen classes' means, unit vectors, sample std (n − 1), classes
//! with n = 0 left out; and the `mean` variant.

mod common;

use candle_core::{DType, Device, Tensor};
use fairnc::collapse::Target;
use fairnc::collapse::stats::split_i128;
use fairnc::train::nc3::{Nc3Regularizer, Nc3Variant};
use fairnc::words::{Class, ClassSet};
use serde_json::Value;
use std::collections::BTreeMap;

fn regularizer(case: &Value, variant: Nc3Variant) -> Nc3Regularizer {
    let ids: Vec<u32> = case["class_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let classes = ClassSet {
        name: "reference".into(),
        group_names: vec!["a".into(), "b".into()],
        classes: ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Class { id, token: id.to_string(), words: vec![], groups: vec![i % 2] })
            .collect(),
        skipped: vec![],
    };
    let (v, d) = (case["vocab_size"].as_u64().unwrap() as usize, case["dim"].as_u64().unwrap() as usize);
    let mut reg = Nc3Regularizer::new(&classes, v, d, Target::Same, variant);
    // The same statistics the generator used: counts and fixed-point feature sums, fed through
    // the checkpoint path (the regularizer's only way in besides observing hidden states).
    let ints = |key: &str| -> Vec<i128> {
        case[key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|x| x.as_array().cloned().unwrap_or_else(|| vec![x.clone()]))
            .map(|x| x.as_i64().map(i128::from).or(x.as_u64().map(i128::from)).unwrap())
            .collect()
    };
    let counts: Vec<i64> = case["counts"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    let k = counts.len();
    let dev = Device::Cpu;
    let state: BTreeMap<String, Tensor> = [
        ("nc3.counts".to_string(), Tensor::from_vec(counts, k, &dev).unwrap()),
        ("nc3.sums".to_string(), Tensor::from_vec(split_i128(&ints("sums")), (k * d, 2), &dev).unwrap()),
        ("nc3.sq_norms".to_string(), Tensor::from_vec(split_i128(&ints("sq_norms")), (k, 2), &dev).unwrap()),
    ]
    .into();
    reg.load_state(&state, "nc3.").unwrap();
    reg
}

fn classifier(case: &Value, dtype: DType) -> Tensor {
    let w: Vec<Vec<f32>> = case["w"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    Tensor::new(w, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

#[test]
fn nc3_value_matches_the_float64_formula() {
    let fixture = common::fixture("train/nc3-reference.json");
    let text = std::fs::read_to_string(&fixture).unwrap_or_else(|e| {
        panic!("{}: {e}; regenerate it with tools/fixtures/make_nc3_fixture.py", fixture.display())
    });
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["scale"].as_f64(), Some((1u64 << 40) as f64), "the fixture's fixed-point scale is not fairnc's");
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let mut compared = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        for (variant, key) in [(Nc3Variant::Std, "std"), (Nc3Variant::Mean, "mean")] {
            let reg = regularizer(case, variant);
            assert_eq!(reg.seen() as u64, case["seen"].as_u64().unwrap(), "{name}: seen classes");
            // f64 classifier: the formula's precision; f32 (as in training): the loss's precision.
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
                let term = reg.term(&classifier(case, dtype)).unwrap();
                match case[key].as_f64() {
                    None => {
                        assert!(case[key].is_null(), "{name}: {key} is neither a number nor null");
                        assert!(term.is_none(), "{name} {key}: a value with fewer than two seen classes");
                    }
                    Some(want) => {
                        let term = term.unwrap_or_else(|| panic!("{name} {key}: no value"));
                        assert_eq!(term.classes as u64, case["seen"].as_u64().unwrap(), "{name}: classes");
                        let got = term.loss.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
                        let rel = (got - want).abs() / want.abs();
                        assert!(rel <= tol, "{name} {key} {dtype:?}: {got} vs reference {want} (relative {rel:.1e})");
                        compared += 1;
                    }
                }
            }
        }
    }
    eprintln!("{compared} values compared with the float64 reference");
}
