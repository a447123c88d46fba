//! `event`: the event parser on arbitrary bytes. Invariants: no panic; an accepted body is a
//! JSON object no deeper than [`MAX_DEPTH`] whose `type`, `id` and `livemode` are what the
//! parser reported, with none of the fields the parser reads given twice; an id header wins
//! over the body's id and changes nothing else. (The fuzz target also bounds what one parse
//! allocates; that needs a counting allocator, which only a binary can install.)

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::event::{parse_event, EventError};

/// The deepest nesting an accepted body has: serde_json's recursion limit of 128 levels,
/// less the one our top-level reader uses (measured: 127 accepted, 128 refused).
pub const MAX_DEPTH: usize = 127;

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    let from_body = parse_event(data, None);
    let from_header = parse_event(data, Some("hdr_fuzz"));
    match (&from_body, &from_header) {
        (Ok(a), Ok(b)) => {
            assert_eq!(b.id.as_str(), "hdr_fuzz");
            assert_eq!((&a.kind, a.livemode), (&b.kind, b.livemode));
        }
        (Err(EventError::MissingId | EventError::BadId), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("an id header changed more than the id: {from_body:?} / {from_header:?}"),
    }
    let Ok(event) = from_header else {
        return false;
    };
    assert!(
        nesting_depth(data) <= MAX_DEPTH,
        "accepted a body nested deeper than {MAX_DEPTH}"
    );
    let Some((keys, object)) = top_level(data) else {
        panic!(
            "accepted a body that is not a JSON object: {:?}",
            String::from_utf8_lossy(data)
        );
    };
    assert_eq!(
        object.get("type").and_then(Value::as_str),
        Some(event.kind.as_str())
    );
    assert_eq!(
        object.get("livemode").and_then(Value::as_bool),
        event.livemode
    );
    if let Ok(event) = &from_body {
        assert_eq!(
            object.get("id").and_then(Value::as_str),
            Some(event.id.as_str())
        );
    }
    for field in ["id", "type", "livemode", "data"] {
        let count = keys.iter().filter(|k| k.as_str() == field).count();
        assert!(
            count <= 1,
            "accepted a body with `{field}` given {count} times"
        );
    }
    true
}

/// The deepest nesting of arrays and objects, counted on the bytes (strings skipped), so it
/// does not rely on the parser under test.
#[must_use]
pub fn nesting_depth(data: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in data {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth = depth.saturating_add(1);
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Every key of the top-level object, repeats included (serde_json's `Value` keeps only the
/// last of a repeated key), and its `type`, `id` and `livemode` as `Value`s (the last of
/// each). Read by a visitor of its own rather than as one `Value`: under serde_json's
/// `arbitrary_precision`, `Value` reads an object whose first key is
/// `$serde_json::private::Number` as a number, which a valid body may contain anywhere.
/// `None` when the body is not a JSON object.
fn top_level(data: &[u8]) -> Option<(Vec<String>, serde_json::Map<String, Value>)> {
    struct TopLevel;
    impl<'de> Visitor<'de> for TopLevel {
        type Value = (Vec<String>, serde_json::Map<String, Value>);
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut keys, mut fields) = (Vec::new(), serde_json::Map::new());
            while let Some(key) = map.next_key::<String>()? {
                if matches!(key.as_str(), "type" | "id" | "livemode") {
                    let value: Value = map.next_value()?;
                    fields.insert(key.clone(), value);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
                keys.push(key);
            }
            Ok((keys, fields))
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let top = deserializer.deserialize_map(TopLevel).ok()?;
    deserializer.end().ok()?;
    Some(top)
}
