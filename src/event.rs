//! Domain types built from *verified* bytes: the event id, the parsed event and the alert
//! figures a person needs. Nothing here sees a body before its signature has been checked.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::fields::FieldMap;

use crate::signature::validate_id;

const MAX_TYPE_LEN: usize = 128;

/// An event id: 1 to 256 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventId(String);

impl EventId {
    /// Parses an id.
    ///
    /// # Errors
    /// [`EventError::BadId`] when empty, too long, or not visible ASCII.
    pub fn parse(id: &str) -> Result<Self, EventError> {
        // The same rule as a Standard Webhooks id header, so every scheme's ids fit one key space.
        validate_id(id.as_bytes()).map_err(|_| EventError::BadId)?;
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether an event or an endpoint is live or test (Perf's `livemode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Real usage and money.
    Live,
    /// Perf's test mode.
    Test,
}

impl Mode {
    /// The mode a `livemode` flag names.
    #[must_use]
    pub fn from_livemode(livemode: bool) -> Self {
        if livemode {
            Self::Live
        } else {
            Self::Test
        }
    }

    /// `live` or `test`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified event, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The dedupe key: the scheme's id header where it has one, else the body's `id`.
    pub id: EventId,
    /// The event type, e.g. `usage.threshold_reached`.
    pub kind: String,
    /// `livemode`, when the event says.
    pub livemode: Option<bool>,
}

/// The figures of a usage or budget alert that a notification shows. Every field is
/// optional: an event type perfhook does not know is still stored and forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Organisation name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Project name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The budget's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_id: Option<String>,
    /// The threshold crossed, in percent of the budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_percent: Option<u64>,
    /// Usage so far, in percent of the budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_percent: Option<u64>,
    /// Usage so far, as a decimal string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// The budget, as a decimal string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The currency of `amount` and `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The budget period (`monthly`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// The billing period's start, as sent (`2026-11-01T00:00:00Z`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    /// The billing period's end, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    /// When the budget reaches 100% at the rate of this period's figures (RFC 3339):
    /// perfhook's projection ([`crate::projection`]), not a figure the sender sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_out_at: Option<String>,
}

/// Why a verified body is not an event perfhook can keep.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    /// Not UTF-8 JSON, nested too deep, or a duplicate key.
    #[error("the body is not a valid JSON event: {0}")]
    InvalidJson(String),
    /// The JSON is not an object with a string `type`.
    #[error("the event has no string `type` of 1 to 128 characters")]
    BadType,
    /// Neither the id header nor the body gives an id.
    #[error("the event has no id (no id header and no string `id` in the body)")]
    MissingId,
    /// The id is not 1 to 256 visible ASCII characters.
    #[error("the event id must be 1 to 256 visible ASCII characters")]
    BadId,
}

/// The top level of an event: what the request path needs (id, type, livemode). Read by
/// hand rather than derived, for four reasons: a derived struct would also accept a JSON
/// *array* of values in field order; serde's ignored fields skip strings without checking
/// their escapes, so a lone surrogate (`"\ud800"`), which no strict JSON reader accepts, would
/// be stored; serde's own type errors quote the offending value, and messages never carry body
/// bytes; and the keys are matched without allocating. Unknown fields are allowed (senders
/// add fields); a repeated known field is refused. `data` is checked for syntax and depth but
/// not built: notifiers read the figures later with [`Alert::from_body`].
#[derive(Default)]
struct Wire {
    id: Option<String>,
    kind: Option<String>,
    livemode: Option<bool>,
}

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any`, not `_map`: for a body that is not an object, serde_json's
        // `deserialize_map` builds its own error, which quotes a string body.
        deserializer.deserialize_any(WireVisitor)
    }
}

/// What a body that is not an object is told.
const NOT_AN_OBJECT: &str = "the body must be a JSON object";

struct WireVisitor;

impl<'de> serde::de::Visitor<'de> for WireVisitor {
    type Value = Wire;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
        use serde::de::Error as _;
        let mut wire = Wire::default();
        let mut seen = [false; 4];
        while let Some(field) = map.next_key::<Field>()? {
            if let Some(flag) = field.slot().and_then(|slot| seen.get_mut(slot)) {
                if std::mem::replace(flag, true) {
                    return Err(A::Error::duplicate_field(field.name()));
                }
            }
            match field {
                Field::Id => wire.id = map.next_value_seed(TextField(ID_MUST))?,
                Field::Type => {
                    wire.kind = map.next_value_seed(TextField(TYPE_MUST))?;
                }
                Field::Livemode => {
                    wire.livemode = map.next_value_seed(FlagField(LIVEMODE_MUST))?;
                }
                Field::Data | Field::Other => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(wire)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Wire, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Wire, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Wire, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Wire, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Wire, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Wire, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Wire, A::Error> {
        use serde::de::Error as _;
        Err(A::Error::custom(NOT_AN_OBJECT))
    }
}

/// The value of `id` or `type`: a string, or null for none. Any other value is refused with
/// `.0`, which names the field and never the value.
#[derive(Clone, Copy)]
struct TextField(&'static str);

/// The value of `livemode`: a boolean, or null for none; refused like [`TextField`].
#[derive(Clone, Copy)]
struct FlagField(&'static str);

/// The visitor methods of a field visitor that refuse a value with `self.0`.
macro_rules! refuse {
    ($($method:ident($($arg:ty)?)),*) => {
        $(fn $method<E: serde::de::Error>(self $(, _: $arg)?) -> Result<Self::Value, E> {
            Err(E::custom(self.0))
        })*
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(serde::de::Error::custom(self.0))
        }
        // With serde_json's `arbitrary_precision`, a number arrives as a one-entry map.
        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(serde::de::Error::custom(self.0))
        }
    };
}

impl<'de> serde::de::Visitor<'de> for TextField {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(text.to_owned()))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    refuse!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64)
    );
}

impl<'de> serde::de::Visitor<'de> for FlagField {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_bool<E: serde::de::Error>(self, flag: bool) -> Result<Self::Value, E> {
        Ok(Some(flag))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    refuse!(
        visit_str(&str),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64)
    );
}

impl<'de> serde::de::DeserializeSeed<'de> for TextField {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for FlagField {
    type Value = Option<bool>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A top-level key, recognised without allocating.
#[derive(Clone, Copy)]
enum Field {
    Id,
    Type,
    Livemode,
    Data,
    Other,
}

impl Field {
    /// Where a known field is marked as seen; `None` for fields that may repeat.
    fn slot(self) -> Option<usize> {
        match self {
            Self::Id => Some(0),
            Self::Type => Some(1),
            Self::Livemode => Some(2),
            Self::Data => Some(3),
            Self::Other => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Type => "type",
            Self::Livemode => "livemode",
            Self::Data => "data",
            Self::Other => "other",
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl serde::de::Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "id" => Field::Id,
                    "type" => Field::Type,
                    "livemode" => Field::Livemode,
                    "data" => Field::Data,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Walks any JSON value without building it. Unlike `serde::de::IgnoredAny` (which serde_json
/// skips iteratively, with no depth limit), every level goes through `deserialize_any`, so
/// serde_json's 128-level recursion limit refuses deeply nested bodies.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> serde::de::Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Parses a verified body. `header_id` is the scheme's id header (Standard Webhooks,
/// GitHub) when it has one; it wins over the body's `id` because it is what the sender
/// retries with.
///
/// # Errors
/// The [`EventError`] naming what is missing or malformed, where (a JSON pointer and a line
/// and column), but never a value from the body.
pub fn parse_event(body: &[u8], header_id: Option<&str>) -> Result<Event, EventError> {
    // A number body would reach the object reader as serde_json's one-entry number map
    // (`arbitrary_precision`), so anything but an object is refused by its first byte.
    let start = body.len() - body.trim_ascii_start().len();
    match body.get(start) {
        Some(b'{') => {}
        Some(b'-' | b'0'..=b'9') => {
            let before = body.get(..start).unwrap_or_default();
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            return Err(EventError::InvalidJson(format!(
                "{NOT_AN_OBJECT} at / (line {line}, column {column})"
            )));
        }
        _ => return Err(EventError::InvalidJson(locate_error(body))),
    }
    // serde_json refuses invalid UTF-8 and nesting deeper than 128 levels.
    let wire: Wire =
        serde_json::from_slice(body).map_err(|_| EventError::InvalidJson(locate_error(body)))?;
    let kind = wire
        .kind
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_TYPE_LEN
                && k.bytes().all(|b| (0x20..=0x7e).contains(&b))
        })
        .ok_or(EventError::BadType)?;
    let id = match (header_id, wire.id.as_deref()) {
        (Some(id), _) | (None, Some(id)) => EventId::parse(id)?,
        (None, None) => return Err(EventError::MissingId),
    };
    Ok(Event {
        id,
        kind,
        livemode: wire.livemode,
    })
}

/// The longest JSON pointer an error quotes; object keys are the sender's text.
const MAX_POINTER_LEN: usize = 120;

/// Parses a refused body again, tracking the path (only on this error path: tracking costs
/// an allocation per key), and describes the failure by what, where and at which position.
fn locate_error(body: &[u8]) -> String {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let Err(error) = serde_path_to_error::deserialize::<_, Wire>(&mut deserializer) else {
        return "the body is not a JSON event".to_owned();
    };
    let pointer = json_pointer(error.path());
    let error = error.into_inner();
    format!(
        "{} at {pointer} (line {}, column {})",
        what_failed(&error),
        error.line(),
        error.column()
    )
}

/// serde_json's message without its position. Syntax messages are fixed texts; data errors
/// are this module's own value-free texts, and anything else is replaced, so no message can
/// carry body bytes.
fn what_failed(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let text = text.strip_suffix(&position).unwrap_or(&text);
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!("syntax error: {text}"),
        Category::Data
            if text == NOT_AN_OBJECT
                || KNOWN_FIELD_ERRORS.contains(&text)
                || text.starts_with("duplicate field `") =>
        {
            text.to_owned()
        }
        Category::Data => "a field has the wrong type".to_owned(),
    }
}

/// The type errors of the known fields.
const KNOWN_FIELD_ERRORS: [&str; 3] = [ID_MUST, TYPE_MUST, LIVEMODE_MUST];
const ID_MUST: &str = "`id` must be a string";
const TYPE_MUST: &str = "`type` must be a string";
const LIVEMODE_MUST: &str = "`livemode` must be true, false or null";

/// The path as an RFC 6901 JSON pointer (`/data/items/0`), `/` itself for the root, with
/// control characters escaped and the length capped.
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                for c in key.chars() {
                    match c {
                        '~' => pointer.push_str("~0"),
                        '/' => pointer.push_str("~1"),
                        c if c.is_control() => pointer.extend(c.escape_default()),
                        c => pointer.push(c),
                    }
                }
            }
            // A failure while reading a key: the pointer names the object that holds it.
            Segment::Unknown => {}
        }
        if pointer.len() > MAX_POINTER_LEN {
            let cut = (0..=MAX_POINTER_LEN)
                .rev()
                .find(|i| pointer.is_char_boundary(*i))
                .unwrap_or(0);
            pointer.truncate(cut);
            pointer.push('…');
            break;
        }
    }
    if pointer.is_empty() {
        pointer.push('/');
    }
    pointer
}

/// What `body.pointer(pointer)` finds (RFC 6901), without allocating for a token that holds
/// no escape: serde_json's lookup unescapes every token into two new strings, and eleven
/// figures are read from every alert on receipt and on each delivery.
fn lookup<'v>(body: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(body);
    }
    let mut at = body;
    for token in pointer.strip_prefix('/')?.split('/') {
        let unescaped;
        let token = if token.contains('~') {
            unescaped = token.replace("~1", "/").replace("~0", "~");
            unescaped.as_str()
        } else {
            token
        };
        at = match at {
            Value::Object(map) => map.get(token)?,
            Value::Array(items) => items.get(array_index(token)?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// An array index as RFC 6901 writes it: digits, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

impl Alert {
    /// The figures in a stored (already verified and parsed) body where Perf's fixtures put
    /// them; empty when it has none.
    #[must_use]
    pub fn from_body(body: &[u8]) -> Self {
        Self::from_body_with(body, &FieldMap::default())
    }

    /// The figures in a stored body where `fields` says they are.
    #[must_use]
    pub fn from_body_with(body: &[u8], fields: &FieldMap) -> Self {
        serde_json::from_slice::<Value>(body)
            .map(|body| Self::from_value(&body, fields))
            .unwrap_or_default()
    }

    fn from_value(body: &Value, fields: &FieldMap) -> Self {
        let at = |pointer: &str| {
            if pointer.is_empty() {
                None
            } else {
                lookup(body, pointer)
            }
        };
        // A string as written; a number in its own digits (kept verbatim).
        let text = |pointer: &str| match at(pointer)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        // A whole percent: an integer, a decimal (rounded down) or either as a string.
        let percent = |pointer: &str| {
            let value = at(pointer)?;
            let digits = match value {
                Value::String(text) => text.trim().to_owned(),
                Value::Number(number) => number.to_string(),
                _ => return None,
            };
            digits.parse::<u64>().ok().or_else(|| {
                let parsed = digits.parse::<f64>().ok()?;
                // Far above any budget but still exact in a u64.
                (parsed.is_finite() && (0.0..1e15).contains(&parsed))
                    .then(|| format!("{}", parsed.floor()).parse::<u64>().ok())
                    .flatten()
            })
        };
        Self {
            organization: text(&fields.organization),
            project: text(&fields.project),
            budget_id: text(&fields.budget_id),
            threshold_percent: percent(&fields.threshold_percent),
            usage_percent: percent(&fields.usage_percent),
            amount: text(&fields.amount),
            limit: text(&fields.limit),
            currency: text(&fields.currency),
            period: text(&fields.period),
            period_start: text(&fields.period_start),
            period_end: text(&fields.period_end),
            runs_out_at: None,
        }
    }

    /// Whether no figure was found (the notification then lists every scalar under `data`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// A one-line headline: `80% of monthly budget`.
    #[must_use]
    pub fn headline(&self) -> Option<String> {
        let percent = self.threshold_percent.or(self.usage_percent)?;
        Some(match &self.period {
            Some(period) => format!("{percent}% of {period} budget"),
            None => format!("{percent}% of budget"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &[u8] = br#"{"id":"evt_1","type":"usage.threshold_reached","livemode":true,
        "data":{"budget":{"period":"monthly","limit":"500.00","currency":"USD"},
        "usage":{"amount":"400.12","percent":80},"threshold":{"percent":80}}}"#;

    #[test]
    fn lookup_finds_what_serde_json_pointer_finds() {
        let body: Value = serde_json::from_str(
            r#"{"a":{"b/c":[10,{"d~e":"x"}],"":{"f":true}},"0":{"01":1,"1":2},"n":null}"#,
        )
        .expect("json");
        for pointer in [
            "",
            "/",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/2",
            "/a/b~1c/-",
            "/a//f",
            "/0/01",
            "/0/1",
            "/n",
            "/n/x",
            "/missing",
            "a",
            "/a/b/c",
            "/a/b~1c/0/x",
            "/a/b~01c",
        ] {
            assert_eq!(lookup(&body, pointer), body.pointer(pointer), "{pointer:?}");
        }
    }

    #[test]
    fn an_alert_parses_with_its_figures() {
        let event = parse_event(ALERT, None).expect("event");
        assert_eq!(event.id.as_str(), "evt_1");
        assert_eq!(event.kind, "usage.threshold_reached");
        assert_eq!(event.livemode, Some(true));
        let alert = Alert::from_body(ALERT);
        assert_eq!(alert.amount.as_deref(), Some("400.12"));
        assert_eq!(alert.headline().as_deref(), Some("80% of monthly budget"));
    }

    #[test]
    fn the_header_id_wins_over_the_body_id() {
        let event = parse_event(ALERT, Some("msg_9")).expect("event");
        assert_eq!(event.id.as_str(), "msg_9");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = parse_event(br#"{"id":"a","id":"b","type":"x"}"#, None).expect_err("dup");
        assert!(
            matches!(err, EventError::InvalidJson(ref m) if m.contains("duplicate field")),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_and_ordinary_data_of_every_kind_is_not() {
        let varied = br#"{"id":"a","type":"x","data":{"s":"t\u00e9","n":-1,"u":2,"f":1.5,"b":true,"z":null,"l":[[{}],[]]}}"#;
        assert!(parse_event(varied, None).is_ok());
        let deep_ok = format!(
            "{{\"id\":\"a\",\"type\":\"x\",\"data\":{}{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse_event(deep_ok.as_bytes(), None).is_ok());
        let deep = format!(
            "{{\"id\":\"a\",\"type\":\"x\",\"data\":{}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(matches!(
            parse_event(deep.as_bytes(), None),
            Err(EventError::InvalidJson(_))
        ));
    }

    #[test]
    fn an_array_in_field_order_is_not_an_event() {
        assert!(matches!(
            parse_event(br#"["evt_1","usage.threshold_reached",true,null]"#, None),
            Err(EventError::InvalidJson(_))
        ));
    }

    #[test]
    fn lone_surrogates_are_refused_in_any_field() {
        for body in [
            &br#"{"id":"a","type":"x","note":"\ud800"}"#[..],
            br#"{"id":"a","type":"x","data":{"n":"\udc00"}}"#,
            br#"{"id":"a","type":"x","\ud800":1}"#,
        ] {
            assert!(
                matches!(parse_event(body, None), Err(EventError::InvalidJson(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn non_utf8_and_non_objects_are_refused() {
        assert!(matches!(
            parse_event(b"{\"id\":\"\xff\",\"type\":\"x\"}", None),
            Err(EventError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_event(b"[1,2]", None),
            Err(EventError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_event(b"", None),
            Err(EventError::InvalidJson(_))
        ));
    }

    #[test]
    fn missing_type_or_id_are_named() {
        assert_eq!(
            parse_event(br#"{"id":"a"}"#, None),
            Err(EventError::BadType)
        );
        assert_eq!(
            parse_event(br#"{"type":"x"}"#, None),
            Err(EventError::MissingId)
        );
        assert_eq!(
            parse_event(br#"{"type":"x","id":""}"#, None),
            Err(EventError::BadId)
        );
        assert_eq!(
            parse_event(br#"{"type":"x","id":"a b"}"#, None),
            Err(EventError::BadId)
        );
    }

    /// Finding 3 of the hostile-input review: a mistyped field quoted its value.
    #[test]
    fn errors_name_the_path_and_position_and_never_a_value() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"id":"a","type":"x","livemode":"card 4111-1111"}"#,
                "`livemode` must be true, false or null at /livemode (line 1, column",
            ),
            (
                br#"{"id":{"card":"4111-1111"},"type":"x"}"#,
                "`id` must be a string at /id (line 1, column",
            ),
            (
                br#"{"id":"a","type":["4111-1111"]}"#,
                "`type` must be a string at /type",
            ),
            (
                br#""card 4111-1111""#,
                "the body must be a JSON object at / (line 1",
            ),
            (
                b"{\"id\":\"a\",\"type\":\"x\",\"data\":{\"usage\":[1,{\"card\":\"4111-1111\"]}}",
                "syntax error: expected `,` or `}` at /data/usage/1 (line 1",
            ),
            (
                br#"{"id":"a","type":"x","data":{"n":"4111-1111\ud800"}}"#,
                "syntax error: unexpected end of hex escape at /data/n",
            ),
        ];
        for (body, expected) in cases {
            let Err(EventError::InvalidJson(message)) = parse_event(body, None) else {
                panic!("{} was accepted", String::from_utf8_lossy(body));
            };
            assert!(
                message.starts_with(expected),
                "{message:?} for {}",
                String::from_utf8_lossy(body)
            );
            assert!(!message.contains("4111"), "{message}");
        }
    }

    #[test]
    fn a_long_or_strange_key_in_the_path_is_escaped_and_capped() {
        let key = format!("{}\\u0007{}", "k".repeat(30), "x".repeat(300));
        let body = format!(r#"{{"id":"a","type":"x","data":{{"{key}":[}}}}"#);
        let Err(EventError::InvalidJson(message)) = parse_event(body.as_bytes(), None) else {
            panic!("accepted");
        };
        assert!(message.contains("/data/kkkk"), "{message}");
        assert!(message.contains("\\u{7}"), "{message}");
        assert!(message.contains('…') && message.len() < 250, "{message}");
    }

    /// Finding 7: RFC 8259 sets no range on numbers; the sender would retry such a body forever.
    #[test]
    fn numbers_beyond_f64_and_u64_are_valid_json_and_accepted() {
        let huge = "9".repeat(500);
        for body in [
            r#"{"id":"a","type":"x","data":{"n":1e400}}"#.to_owned(),
            format!(r#"{{"id":"a","type":"x","data":{{"n":{huge},"m":-{huge}.5e-999}}}}"#),
            r#"{"id":"a","type":"x","note":[1E+400,-0.0e-0]}"#.to_owned(),
        ] {
            let event = parse_event(body.as_bytes(), None).expect(&body);
            assert_eq!(event.kind, "x");
        }
        // Syntax is still checked: a leading zero or a bare exponent is not a JSON number.
        for body in [
            &br#"{"id":"a","type":"x","n":01}"#[..],
            br#"{"id":"a","type":"x","n":1e}"#,
        ] {
            assert!(matches!(
                parse_event(body, None),
                Err(EventError::InvalidJson(_))
            ));
        }
    }

    #[test]
    fn figures_still_read_from_an_alert_with_huge_numbers_elsewhere() {
        let body = br#"{"id":"a","type":"x","data":{"usage":{"percent":80,"tokens":1e400},"threshold":{"percent":80}}}"#;
        let alert = Alert::from_body(body);
        assert_eq!(alert.usage_percent, Some(80));
        assert_eq!(alert.threshold_percent, Some(80));
    }

    /// A review finding on `arbitrary_precision`: serde_json hands a number to a visitor as a
    /// one-entry map, so a number body must be refused before the object reader sees it.
    #[test]
    fn a_number_body_is_not_an_object() {
        for (body, expected) in [
            (
                &b"5"[..],
                "the body must be a JSON object at / (line 1, column 1)",
            ),
            (
                b"\n  -1e400",
                "the body must be a JSON object at / (line 2, column 3)",
            ),
        ] {
            let Err(EventError::InvalidJson(message)) = parse_event(body, None) else {
                panic!("{} was accepted", String::from_utf8_lossy(body));
            };
            assert!(message.starts_with(expected), "{message:?}");
        }
    }
}
