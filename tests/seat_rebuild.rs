//! The SEAT gender tests rebuilt from WEAT word lists against sent-bias's files in
//! ../shared/data/seat, set by set and in order. A rebuilt test may carry sent-bias's name only
//! when all four of its sets equal the file's; the four whose Arts target set sent-bias cut at
//! random (unseeded) to the other target's size are `*-rebuilt`, and for them the file's Arts
//! sentences must be an in-order subset of the rebuilt ones and every other set equal.

mod common;

use fairnc::data::seat::{Category, REBUILDABLE, REBUILT_SUFFIX, is_standard, read_test, rebuild};

/// Whether `small` is `big` with some items removed (order kept), as sent-bias's truncation does.
fn is_ordered_subset(small: &[String], big: &[String]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

#[test]
fn rebuilt_tests_equal_the_files_or_are_named_rebuilt() {
    let mut report = String::new();
    for name in REBUILDABLE {
        let path = common::shared_data().join(format!("seat/{name}.jsonl"));
        assert!(path.exists(), "{}: missing; the comparison needs sent-bias's files", path.display());
        let file = read_test(&path).unwrap();
        let rebuilt = rebuild(name).unwrap();
        let sets: [(&str, &Category, &Category); 4] = [
            ("targ1", &rebuilt.targ1, &file.targ1),
            ("targ2", &rebuilt.targ2, &file.targ2),
            ("attr1", &rebuilt.attr1, &file.attr1),
            ("attr2", &rebuilt.attr2, &file.attr2),
        ];
        let mut equal = true;
        for (key, ours, theirs) in sets {
            assert_eq!(ours.category, theirs.category, "{name} {key}");
            if ours.examples == theirs.examples {
                continue;
            }
            equal = false;
            // The one difference sent-bias's generator makes: Arts cut to the other target's size.
            assert!(
                key == "targ2" && ours.category == "Arts",
                "{name} {key} ({}): rebuilt sentences differ from the file's beyond the Arts truncation",
                ours.category
            );
            assert_eq!(
                theirs.examples.len(),
                file.targ1.examples.len(),
                "{name}: the file's Arts set is not cut to the size of {}",
                file.targ1.category
            );
            assert!(
                is_ordered_subset(&theirs.examples, &ours.examples),
                "{name} {key}: the file's Arts sentences are not an in-order subset of the rebuilt ones"
            );
            report.push_str(&format!(
                "{} {key} (Arts): rebuilt {} sentences, file {}\n",
                rebuilt.name,
                ours.examples.len(),
                theirs.examples.len()
            ));
        }
        if equal {
            assert_eq!(rebuilt.name, name, "{name}: equal to the file but renamed");
            assert!(is_standard(&rebuilt.name));
        } else {
            assert_eq!(
                rebuilt.name,
                format!("{name}{REBUILT_SUFFIX}"),
                "{name}: differs from sent-bias's file but keeps its name"
            );
            assert!(!is_standard(&rebuilt.name));
        }
    }
    eprintln!("{report}");
    // sent-bias's weat7/7b Arts: 72 of 82 sentences; weat8/8b Arts: 56 of 76.
    for (name, rebuilt, file) in [
        ("sent-weat7-rebuilt", 82, 72),
        ("sent-weat7b-rebuilt", 82, 72),
        ("sent-weat8-rebuilt", 76, 56),
        ("sent-weat8b-rebuilt", 76, 56),
    ] {
        assert!(
            report.contains(&format!("{name} targ2 (Arts): rebuilt {rebuilt} sentences, file {file}\n")),
            "{name}: {report}"
        );
    }
}

#[test]
fn rebuilt_names_resolve_and_keep_their_bias_type() {
    assert_eq!(rebuild("sent-weat7-rebuilt").unwrap().name, "sent-weat7-rebuilt");
    assert_eq!(rebuild("sent-weat7").unwrap().name, "sent-weat7-rebuilt");
    assert_eq!(rebuild("sent-weat6").unwrap().name, "sent-weat6");
    let e = rebuild("sent-weat6-rebuilt").unwrap_err().to_string();
    assert!(e.contains("cannot be rebuilt"), "{e}");
    assert_eq!(fairnc::data::seat::bias_type("sent-weat8b-rebuilt"), Some("gender"));
    let rebuilt: Vec<String> =
        fairnc::data::seat::tests_of("gender").iter().map(|n| fairnc::data::seat::rebuilt_name(n)).collect();
    let files: Vec<String> = fairnc::data::seat::tests_of("gender").iter().map(|n| n.to_string()).collect();
    assert!(fairnc::data::seat::is_standard_set(&files, "gender"));
    assert!(
        !fairnc::data::seat::is_standard_set(&rebuilt, "gender"),
        "the rebuilt gender tests must not pass for sent-bias's"
    );
}

/// A collapse result without classes (the audit below is about its SEAT part only).
fn no_collapse() -> fairnc::collapse::CollapseResult {
    serde_json::from_value(serde_json::json!({
        "metrics": {}, "groups": {}, "classes": [], "skipped": [], "merged": [], "notes": [],
        "counts": {"K": 0, "classes": 0, "classes_below_min_count": 0, "positions_stats": 0, "positions_heldout": 0},
        "settings": {"model": "m", "corpus": "bug", "words": "gender", "policy": "whole-word", "convention": "default",
            "target": "same", "features": "hidden", "metric": fairnc::collapse::MetricConvention::DEFAULT,
            "min_count": 1, "heldout": 0.2, "max_len": 128},
    }))
    .unwrap()
}

/// The audit compares the SEAT gender average with bias-bench's 0.590 only for sent-bias's files.
#[test]
fn audit_shows_the_published_seat_figure_only_for_the_files() {
    let score =
        fairnc::bench::seat::SeatScore { effect_size: 0.5, p_value: 0.2, exact: false, sizes: [72, 82, 80, 80] };
    let audit = |names: &[String]| {
        let seat = fairnc::bench::SeatSection {
            tests: names.iter().map(|n| (n.clone(), score.clone())).collect(),
            avg_abs_effect: [("gender".to_string(), 0.5)].into_iter().collect(),
        };
        let a = fairnc::audit::Audit {
            model: "m".into(),
            family: "bert".into(),
            lm_head: "pretrained".into(),
            classifier: "bert.embeddings.word_embeddings.weight".into(),
            tied_head: true,
            causal: false,
            projection: None,
            quick: true,
            words: "gender".into(),
            corpus_texts: 1,
            collapse: no_collapse(),
            eval: fairnc::bench::EvalResults { seat: Some(seat), ..Default::default() },
            largest_gaps: Default::default(),
            skipped: vec![],
            seconds: [("total".to_string(), 1.0)].into(),
            version: "0".into(),
        };
        fairnc::report::audit::document(&a).markdown()
    };
    let files: Vec<String> = fairnc::data::seat::tests_of("gender").iter().map(|n| n.to_string()).collect();
    let rebuilt: Vec<String> = files.iter().map(|n| fairnc::data::seat::rebuilt_name(n)).collect();
    let md = audit(&files);
    assert!(md.contains("0.590"), "{md}");
    let md = audit(&rebuilt);
    assert!(!md.contains("0.590"), "{md}");
    assert!(
        md.contains("sent-weat7-rebuilt")
            && md.contains("72 / 82 / 80 / 80")
            && md.contains("not comparable with published figures"),
        "{md}"
    );
}
