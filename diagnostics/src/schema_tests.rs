//! Checks `docs/metadata.schema.json` against the serde types: a fully
//! populated [`Metadata`] validates (strictly: every property it emits is
//! declared), the schema's `required` lists are exactly what serde needs.
//!
//! The validator covers the subset of JSON Schema 2020-12 the schema uses:
//! `type`, `const`, `enum`, `properties`, `required`, `items`,
//! `additionalProperties`, `$ref` to `#/$defs/...`, `anyOf`, `pattern` and
//! `minimum`.

use serde_json::{json, Value};

use crate::metadata::tests::full;
use crate::metadata::Metadata;

const SCHEMA: &str = include_str!("../../docs/metadata.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("the schema is valid JSON")
}

fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/$defs/").expect("local $ref");
            resolve(root, &root["$defs"][name])
        }
        None => s,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unknown type {other}"),
    }
}

/// Errors of `v` against `s`; `strict` also reports undeclared properties.
fn validate(root: &Value, s: &Value, v: &Value, at: &str, strict: bool, errors: &mut Vec<String>) {
    let s = resolve(root, s);
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|alt| {
            let mut e = Vec::new();
            validate(root, alt, v, at, strict, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: matches no alternative of anyOf"));
        }
        return;
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            _ => panic!("bad type"),
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(p), Some(s)) = (s.get("pattern").and_then(Value::as_str), v.as_str()) {
        if !regex::Regex::new(p).unwrap().is_match(s) {
            errors.push(format!("{at}: {s:?} does not match {p}"));
        }
    }
    if let (Some(m), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < m {
            errors.push(format!("{at}: {n} < {m}"));
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(root, items, x, &format!("{at}[{i}]"), strict, errors);
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: missing required {r}"));
            }
        }
        for (k, x) in obj {
            let path = format!("{at}.{k}");
            match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                (Some(ps), _) => validate(root, ps, x, &path, strict, errors),
                (None, Some(Value::Bool(true))) => {}
                (None, Some(Value::Bool(false))) => errors.push(format!("{path}: not allowed")),
                (None, Some(ap)) => validate(root, ap, x, &path, strict, errors),
                (None, None) if strict => {
                    errors.push(format!("{path}: not declared in the schema"))
                }
                (None, None) => {}
            }
        }
    }
}

fn errors_of(v: &Value, strict: bool) -> Vec<String> {
    let root = schema();
    let mut e = Vec::new();
    validate(&root, &root, v, "$", strict, &mut e);
    e
}

#[test]
fn schema_header_is_draft_2020_12() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(
        s["properties"]["schema_version"]["const"],
        json!(crate::metadata::SCHEMA_VERSION)
    );
}

#[test]
fn full_and_minimal_metadata_validate_strictly() {
    let v: Value = serde_json::from_str(&full().to_json()).unwrap();
    assert_eq!(errors_of(&v, true), Vec::<String>::new());
    let running = Metadata::new("t", chrono::Utc::now());
    let v: Value = serde_json::from_str(&running.to_json()).unwrap();
    assert_eq!(errors_of(&v, true), Vec::<String>::new());
    // Every top-level property the struct emits is declared, and vice versa.
    let root = schema();
    let mut declared: Vec<&str> = root["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut emitted: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    declared.sort_unstable();
    emitted.sort_unstable();
    assert_eq!(declared, emitted);
}

#[test]
fn validator_rejects_wrong_documents() {
    let good: Value = serde_json::from_str(&full().to_json()).unwrap();
    let mut v = good.clone();
    v["outcome"] = "exploded".into();
    assert_eq!(errors_of(&v, false).len(), 1);
    let mut v = good.clone();
    v["artifacts"][0]["sha256"] = "XYZ".into();
    assert!(!errors_of(&v, false).is_empty());
    let mut v = good.clone();
    v["new_field"] = 1.into();
    assert!(errors_of(&v, false).is_empty(), "newer fields are allowed");
    assert!(!errors_of(&v, true).is_empty());
    let mut v = good;
    v["phases"][0]["start_ms"] = (-1).into();
    assert!(!errors_of(&v, false).is_empty());
}

/// Objects of a full document, paired with their schema, by JSON pointer.
fn objects_with_schemas() -> Vec<(String, String)> {
    vec![
        ("".into(), "".into()),
        ("/failure".into(), "/$defs/failure".into()),
        (
            "/failure/step".into(),
            "/$defs/failure/properties/step/anyOf/1".into(),
        ),
        (
            "/failure/crash".into(),
            "/$defs/failure/properties/crash/anyOf/1".into(),
        ),
        ("/phases/0".into(), "/$defs/phase".into()),
        ("/boot_sources/0".into(), "/$defs/boot_source".into()),
        ("/qemu".into(), "/$defs/qemu".into()),
        ("/host".into(), "/$defs/host".into()),
        ("/guest".into(), "/$defs/guest".into()),
        ("/artifacts/0".into(), "/$defs/artifact".into()),
        (
            "/artifacts/0/produced_by".into(),
            "/$defs/artifact/properties/produced_by".into(),
        ),
    ]
}

#[test]
fn required_lists_match_what_serde_requires() {
    let root = schema();
    let good: Value = serde_json::from_str(&full().to_json()).unwrap();
    for (doc_ptr, schema_ptr) in objects_with_schemas() {
        let s = root
            .pointer(&schema_ptr)
            .unwrap_or_else(|| panic!("{schema_ptr}"));
        let required: Vec<&str> = s["required"]
            .as_array()
            .map(|a| a.iter().map(|r| r.as_str().unwrap()).collect())
            .unwrap_or_default();
        let obj = good.pointer(&doc_ptr).unwrap().as_object().unwrap();
        for key in obj.keys() {
            let mut v = good.clone();
            v.pointer_mut(&doc_ptr)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
            let parsed = Metadata::from_json(&v.to_string(), std::path::Path::new("m.json"));
            assert_eq!(
                parsed.is_err(),
                required.contains(&key.as_str()),
                "{doc_ptr}/{key}: required in schema = {}, serde = {}",
                required.contains(&key.as_str()),
                parsed.is_err()
            );
        }
    }
}

/// The ```json blocks of docs/metadata.md.
fn doc_examples() -> Vec<String> {
    let doc = include_str!("../../docs/metadata.md");
    doc.split("```json\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn documented_examples_parse_and_validate() {
    let ex = doc_examples();
    assert_eq!(ex.len(), 2);
    let m = Metadata::from_json(&ex[0], std::path::Path::new("metadata.md")).unwrap();
    assert_eq!(m.artifacts.len(), 2);
    let v: Value = serde_json::from_str(&ex[0]).unwrap();
    assert_eq!(errors_of(&v, true), Vec::<String>::new());
    let r: crate::run::RunSummary = serde_json::from_str(&ex[1]).unwrap();
    assert_eq!(r.tests.len(), 2);
}
