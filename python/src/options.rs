//! Keyword options → a stage's config: the config's defaults as a JSON object, the caller's
//! options laid over it by field name, then read back through the config's own serde types, so
//! that Python accepts exactly the fields (and spellings of enums) the library and the experiment
//! TOML do. A field of a nested section (GLUE's `settings`) may be given by its own name.

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// `defaults` with the fields of `given` (a JSON object) replaced; `stage` names the call in
/// errors, which name the option and what was wrong with its value.
pub fn overlay<T: Serialize + DeserializeOwned>(stage: &str, defaults: &T, given: &str) -> Result<T> {
    let given: Map<String, Value> = serde_json::from_str(given).with_context(|| format!("{stage}: options"))?;
    let Value::Object(mut fields) = serde_json::to_value(defaults)? else {
        bail!("{stage}: the config is not a table")
    };
    for (name, value) in given {
        let slot = if fields.contains_key(&name) {
            fields.get_mut(&name)
        } else {
            fields
                .values_mut()
                .filter_map(Value::as_object_mut)
                .find(|section| section.contains_key(&name))
                .and_then(|section| section.get_mut(&name))
        };
        let Some(slot) = slot else {
            bail!("{stage}: unknown option {name:?} (options: {})", names(defaults).join(", "));
        };
        *slot = value;
        // Read back after each option, so that an error names the option at fault.
        serde_json::from_value::<T>(Value::Object(fields.clone()))
            .map_err(|e| anyhow!("{stage}: option {name}: {e}"))?;
    }
    Ok(serde_json::from_value(Value::Object(fields))?)
}

/// The options a config takes: its fields, and those of its nested sections in their place.
pub fn names<T: Serialize>(defaults: &T) -> Vec<String> {
    let Ok(Value::Object(fields)) = serde_json::to_value(defaults) else { return Vec::new() };
    fields
        .into_iter()
        .flat_map(|(name, value)| match value {
            Value::Object(section) => section.keys().cloned().collect::<Vec<_>>(),
            _ => vec![name],
        })
        .collect()
}
