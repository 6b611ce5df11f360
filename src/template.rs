//! `{{name}}` placeholders inside the JSON strings of the documents in `templates/` (the
//! task definition, the IAM policies). One walker for all of them, so a placeholder
//! means the same thing in every file.

use std::collections::BTreeMap;

use serde_json::Value;

/// A placeholder that cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// No value for this name.
    Unknown(String),
    /// `{{` without `}}`, in this text.
    Unterminated(String),
}

/// Fills every placeholder in every string of `value`.
pub fn fill(value: &mut Value, values: &BTreeMap<&str, String>) -> Result<(), Gap> {
    match value {
        Value::String(text) => *text = fill_text(text, values)?,
        Value::Array(items) => {
            for item in items {
                fill(item, values)?;
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                fill(item, values)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn fill_text(text: &str, values: &BTreeMap<&str, String>) -> Result<String, Gap> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| Gap::Unterminated(text.to_string()))?;
        let name = rest[start + 2..start + end].trim();
        let value = values
            .get(name)
            .ok_or_else(|| Gap::Unknown(name.to_string()))?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_nested_strings_and_names_what_is_missing() {
        let values = BTreeMap::from([("a", "x".to_string()), ("b", "y".to_string())]);
        let mut doc = json!({"k": ["{{a}}-{{ b }}", 3], "o": {"p": "plain"}});
        fill(&mut doc, &values).unwrap();
        assert_eq!(doc, json!({"k": ["x-y", 3], "o": {"p": "plain"}}));
        assert_eq!(
            fill(&mut json!("{{c}}"), &values),
            Err(Gap::Unknown("c".into()))
        );
        assert_eq!(
            fill(&mut json!("{{a"), &values),
            Err(Gap::Unterminated("{{a".into()))
        );
    }
}
