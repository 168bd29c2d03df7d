//! The SEAT gender tests rebuilt from WEAT word lists against sent-bias's files in
//! ../shared/data/seat: 20 of the 24 sentence sets are equal; the four Arts target sets are
//! supersets, because sent-bias dropped Arts sentences at random to match the size of the
//! other target set (Math 72, Science 56), which cannot be reproduced (see the list printed).

mod common;

use std::collections::BTreeSet;

#[test]
fn rebuilt_gender_tests_cover_the_reference_files() {
    let mut report = String::new();
    for name in fairnc::data::seat::REBUILDABLE {
        let rebuilt = fairnc::data::seat::rebuild(name).unwrap();
        let file = fairnc::data::seat::read_test(&common::shared_data().join(format!("seat/{name}.jsonl"))).unwrap();
        for (key, ours, theirs) in [("targ1", &rebuilt.targ1, &file.targ1), ("targ2", &rebuilt.targ2, &file.targ2), ("attr1", &rebuilt.attr1, &file.attr1), ("attr2", &rebuilt.attr2, &file.attr2)] {
            assert_eq!(ours.category, theirs.category, "{name} {key}");
            let a: BTreeSet<&String> = ours.examples.iter().collect();
            let b: BTreeSet<&String> = theirs.examples.iter().collect();
            let missing: Vec<&&String> = b.difference(&a).collect();
            assert!(missing.is_empty(), "{name} {key}: the file has sentences the templates do not make: {missing:?}");
            let extra: Vec<&&String> = a.difference(&b).collect();
            if key == "targ2" && ours.category == "Arts" {
                // sent-bias cut the Arts sentences at random to the size of the other target set.
                assert_eq!(theirs.examples.len(), file.targ1.examples.len(), "{name}");
            } else {
                assert!(extra.is_empty(), "{name} {key}: rebuilt sentences not in the file: {extra:?}");
            }
            if !extra.is_empty() {
                report.push_str(&format!("{name} {key} ({}): {} rebuilt sentences not in the file: {extra:?}\n", ours.category, extra.len()));
            }
        }
    }
    eprintln!("{report}");
}
