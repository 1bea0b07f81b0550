//! HuJSON: JSON with comments and trailing commas, nothing else.
//!
//! Parsed with `jsonc-parser` with every JSON5 extension turned off except
//! comments and trailing commas, so a policy claw accepts is one Tailscale
//! accepts. The standardized form used for comparison and display is the
//! parsed value printed with sorted keys and two-space indentation.

use serde_json::{Map, Value};

/// Where and why a HuJSON text failed to parse (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct HujsonError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for HujsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

fn options() -> jsonc_parser::ParseOptions {
    jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// Parses a HuJSON document.
pub fn parse(text: &str) -> Result<Value, HujsonError> {
    if text.trim().is_empty() {
        return Err(HujsonError {
            line: 1,
            column: 1,
            message: "the policy file is empty".into(),
        });
    }
    jsonc_parser::parse_to_serde_value::<Value>(text, &options()).map_err(|e| {
        let mut message = e.kind().to_string();
        if message.starts_with("Unexpected word") || message.starts_with("Expected string") {
            message.push_str(" (object keys must be double-quoted strings)");
        }
        HujsonError {
            line: e.line_display(),
            column: e.column_display(),
            message,
        }
    })
}

/// Returns a copy with every object's keys sorted.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut m = Map::new();
            for k in keys {
                m.insert(k.clone(), sorted(&o[k]));
            }
            Value::Object(m)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The standardized text of a policy: sorted keys, two-space indentation, a
/// final newline. Two policies that differ only in comments, formatting or
/// key order have the same standardized text.
pub fn standardize(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&sorted(v)).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_are_hujson() {
        let a = parse("// c\n{\"b\": [1, 2,], /* x */ \"a\": {\"z\": 1, \"y\": 2,},}\n").unwrap();
        let b = parse("{\"a\":{\"y\":2,\"z\":1},\"b\":[1,2]}").unwrap();
        assert_eq!(standardize(&a), standardize(&b));
        assert!(standardize(&a).starts_with("{\n  \"a\": {\n    \"y\": 2,"));
    }

    #[test]
    fn json5_extensions_are_refused_with_position() {
        let cases = [
            ("{\n  'a': 1\n}", 2, 3, "Single-quoted"),
            ("{\n  a: 1\n}", 2, 3, "double-quoted"),
            ("{\"a\": 0x1F}", 1, 7, "Hexadecimal"),
            ("{\"a\": +1}", 1, 7, "Unary plus"),
            ("{\"a\": .5}", 1, 7, "decimal point"),
            ("{\"a\": 1 \"b\": 2}", 1, 8, "comma"),
        ];
        for (text, line, col, word) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!((e.line, e.column), (line, col), "{text}: {e}");
            assert!(e.message.contains(word), "{text}: {e}");
        }
    }
}
