//! A run directory's settings record (`settings.json`): written before the run starts and
//! compared on every rerun, so that a rerun with other settings never silently reuses the old
//! results. A record is a flat JSON object, setting name → value (null = left at its default).

use anyhow::{Context, Result};
use std::path::Path;

pub const FILE: &str = "settings.json";

/// The recorded settings of `dir`, if it has a record.
pub fn read(dir: &Path) -> Result<Option<serde_json::Value>> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}: not a settings record", path.display()))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

pub fn write(dir: &Path, settings: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    crate::util::fs::write_atomic(&dir.join(FILE), serde_json::to_string_pretty(settings)?.as_bytes())
}

fn shown(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "unset".into(),
        Some(v) => v.to_string(),
    }
}

/// Every setting (in name order) whose recorded value differs from `now`, each as
/// "`lr` was 0.00002, now 0.0001"; a setting missing on one side counts as unset.
pub fn changes(recorded: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (old, new) = (recorded.as_object().unwrap_or(&empty), now.as_object().unwrap_or(&empty));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let null = serde_json::Value::Null;
    names
        .into_iter()
        .filter(|k| old.get(*k).unwrap_or(&null) != new.get(*k).unwrap_or(&null))
        .map(|k| format!("`{k}` was {}, now {}", shown(old.get(k)), shown(new.get(k))))
        .collect()
}

/// The first of [`changes`]; None when every setting agrees.
pub fn difference(recorded: &serde_json::Value, now: &serde_json::Value) -> Option<String> {
    changes(recorded, now).into_iter().next()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_differing_setting_is_named() {
        let a = serde_json::json!({"lr": 2e-5, "model": "minilm", "steps": null});
        assert_eq!(super::difference(&a, &a.clone()), None);
        let b = serde_json::json!({"lr": 1e-4, "model": "minilm", "steps": null});
        assert_eq!(super::difference(&a, &b).unwrap(), "`lr` was 0.00002, now 0.0001");
        let c = serde_json::json!({"lr": 2e-5, "model": "minilm", "steps": 80});
        assert_eq!(super::difference(&a, &c).unwrap(), "`steps` was unset, now 80");
        let d = serde_json::json!({"lr": 2e-5, "model": "minilm"});
        assert_eq!(super::difference(&a, &d), None, "a missing setting is an unset one");
        assert_eq!(
            super::difference(&serde_json::json!({"model": "a"}), &serde_json::json!({"model": "b"})).unwrap(),
            "`model` was \"a\", now \"b\""
        );
        assert_eq!(
            super::changes(&a, &serde_json::json!({"lr": 1e-4, "model": "x"})),
            ["`lr` was 0.00002, now 0.0001", "`model` was \"minilm\", now \"x\""]
        );
    }
}
