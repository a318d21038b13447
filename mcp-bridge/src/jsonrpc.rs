//! JSON-RPC 2.0 framing as MCP uses it: classify a message, validate it, build errors.
//!
//! Pure functions over `serde_json::Value`; no I/O. The bridge relays messages it does
//! not understand, so classification looks only at the envelope (`jsonrpc`, `id`,
//! `method`, `result`/`error`), never at method-specific parameters.

use serde_json::{json, Map, Value};

pub use gateway_common::jsonrpc::{code, IdKey};

/// What a single JSON-RPC message is, judged from its envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response { id: Value },
}

/// A POST body: one message or (2025-03-26 only) a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Single(Message),
    Batch(Vec<Message>),
}

/// A validated message: its kind and the JSON object itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub value: Value,
}

impl Message {
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response { .. } => None,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.kind, Kind::Request { .. })
    }

    pub fn params(&self) -> Option<&Value> {
        self.value.get("params")
    }
}

/// Why a body is not acceptable JSON-RPC, with the error code to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("parse error: body is not JSON")]
    NotJson,
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("invalid request: empty batch")]
    EmptyBatch,
}

impl FrameError {
    pub fn code(&self) -> i64 {
        match self {
            FrameError::NotJson => code::PARSE_ERROR,
            FrameError::Invalid(_) | FrameError::EmptyBatch => code::INVALID_REQUEST,
        }
    }
}

/// Parses a POST body (bytes) into one message or a batch.
pub fn parse_body(bytes: &[u8]) -> Result<Body, FrameError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| FrameError::NotJson)?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(FrameError::EmptyBatch);
            }
            items
                .into_iter()
                .map(classify)
                .collect::<Result<Vec<_>, _>>()
                .map(Body::Batch)
        }
        other => classify(other).map(Body::Single),
    }
}

/// Classifies one JSON value as a JSON-RPC 2.0 message (§4, §5).
pub fn classify(value: Value) -> Result<Message, FrameError> {
    let obj = value
        .as_object()
        .ok_or(FrameError::Invalid("a message must be a JSON object"))?;
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(FrameError::Invalid("\"jsonrpc\" must be \"2.0\""));
    }
    let id = obj.get("id");
    if let Some(id) = id {
        // MCP forbids null ids (basic/index: "the ID MUST NOT be null"); JSON-RPC allows
        // only strings and numbers besides.
        if !(id.is_string() || id.is_number()) {
            return Err(FrameError::Invalid("\"id\" must be a string or a number"));
        }
    }
    let kind = match (obj.get("method"), id) {
        (Some(Value::String(method)), Some(id)) => {
            check_params(obj)?;
            Kind::Request {
                id: id.clone(),
                method: method.clone(),
            }
        }
        (Some(Value::String(method)), None) => {
            check_params(obj)?;
            Kind::Notification {
                method: method.clone(),
            }
        }
        (Some(_), _) => return Err(FrameError::Invalid("\"method\" must be a string")),
        (None, Some(id)) => {
            let has_result = obj.contains_key("result");
            let has_error = obj.contains_key("error");
            if has_result == has_error {
                return Err(FrameError::Invalid(
                    "a response carries exactly one of \"result\" and \"error\"",
                ));
            }
            if has_error && !obj.get("error").is_some_and(Value::is_object) {
                return Err(FrameError::Invalid("\"error\" must be an object"));
            }
            Kind::Response { id: id.clone() }
        }
        (None, None) => {
            return Err(FrameError::Invalid(
                "a message needs \"method\" or \"id\" with \"result\"/\"error\"",
            ))
        }
    };
    Ok(Message { kind, value })
}

fn check_params(obj: &Map<String, Value>) -> Result<(), FrameError> {
    match obj.get("params") {
        None | Some(Value::Object(_)) | Some(Value::Array(_)) => Ok(()),
        Some(_) => Err(FrameError::Invalid(
            "\"params\" must be an object or an array",
        )),
    }
}

/// A JSON-RPC error response. `id` is `None` when the request's id is unknown
/// (JSON-RPC §5: `"id": null` then).
pub fn error(id: Option<&Value>, code: i64, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": code, "message": message },
    })
}

/// A JSON-RPC error response with `data`.
pub fn error_with_data(id: Option<&Value>, code: i64, message: &str, data: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": code, "message": message, "data": data },
    })
}

/// A JSON-RPC success response.
pub fn result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// A JSON-RPC notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

/// The error code of a response, if it is an error response.
pub fn error_code(response: &Value) -> Option<i64> {
    response.get("error")?.get("code")?.as_i64()
}

/// `params._meta.progressToken` of a request (MCP basic/utilities/progress).
pub fn progress_token(message: &Value) -> Option<&Value> {
    message.get("params")?.get("_meta")?.get("progressToken")
}

/// Replaces `params._meta.progressToken`, returning the old one.
pub fn replace_progress_token(message: &mut Value, token: Value) -> Option<Value> {
    let slot = message
        .get_mut("params")?
        .get_mut("_meta")?
        .get_mut("progressToken")?;
    Some(std::mem::replace(slot, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classifies_the_four_shapes() {
        let req = parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert!(matches!(
            req,
            Body::Single(Message {
                kind: Kind::Request { .. },
                ..
            })
        ));
        let note =
            parse_body(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(
            note,
            Body::Single(Message {
                kind: Kind::Notification { .. },
                ..
            })
        ));
        let resp = parse_body(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(
            resp,
            Body::Single(Message {
                kind: Kind::Response { .. },
                ..
            })
        ));
        let batch = parse_body(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        )
        .unwrap();
        assert!(matches!(batch, Body::Batch(ref v) if v.len() == 2));
    }

    #[test]
    fn rejects_what_json_rpc_forbids() {
        assert_eq!(parse_body(b"{nope").unwrap_err(), FrameError::NotJson);
        assert_eq!(parse_body(b"[]").unwrap_err(), FrameError::EmptyBatch);
        for bad in [
            r#"{"id":1,"method":"a"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"a"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"a"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"a"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"x"}"#,
            r#"{"jsonrpc":"2.0"}"#,
            r#"5"#,
        ] {
            let err = parse_body(bad.as_bytes()).unwrap_err();
            assert_eq!(err.code(), code::INVALID_REQUEST, "{bad}");
        }
        assert_eq!(FrameError::NotJson.code(), code::PARSE_ERROR);
    }

    #[test]
    fn unknown_methods_are_still_requests() {
        let m = classify(json!({"jsonrpc":"2.0","id":7,"method":"server/discover"})).unwrap();
        assert_eq!(m.method(), Some("server/discover"));
        assert!(m.is_request());
    }

    #[test]
    fn progress_tokens_can_be_swapped() {
        let mut m = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"_meta":{"progressToken":"abc"}}});
        assert_eq!(progress_token(&m), Some(&json!("abc")));
        assert_eq!(replace_progress_token(&mut m, json!(9)), Some(json!("abc")));
        assert_eq!(progress_token(&m), Some(&json!(9)));
        let mut none = json!({"jsonrpc":"2.0","id":1,"method":"x"});
        assert_eq!(replace_progress_token(&mut none, json!(1)), None);
    }

    #[test]
    fn errors_carry_the_id_or_null() {
        let e = error(Some(&json!(3)), code::INTERNAL_ERROR, "boom");
        assert_eq!(e["id"], json!(3));
        assert_eq!(error_code(&e), Some(code::INTERNAL_ERROR));
        assert_eq!(error(None, code::PARSE_ERROR, "x")["id"], Value::Null);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z/]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("jsonrpc".to_string()),
                        Just("id".to_string()),
                        Just("method".to_string()),
                        Just("params".to_string()),
                        Just("result".to_string()),
                        Just("error".to_string()),
                        "[a-z]{1,4}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_body(&bytes);
        }

        #[test]
        fn classification_is_consistent(v in arb_json()) {
            if let Ok(m) = classify(v.clone()) {
                let obj = v.as_object().unwrap();
                prop_assert_eq!(obj.get("jsonrpc"), Some(&json!("2.0")));
                match m.kind {
                    Kind::Request { ref id, ref method } => {
                        prop_assert_eq!(obj.get("id"), Some(id));
                        prop_assert_eq!(obj.get("method"), Some(&json!(method)));
                    }
                    Kind::Notification { .. } => prop_assert!(obj.get("id").is_none()),
                    Kind::Response { .. } => {
                        prop_assert!(obj.contains_key("result") ^ obj.contains_key("error"));
                    }
                }
                // Round trip: serialising and parsing again gives the same message.
                let again = parse_body(&serde_json::to_vec(&v).unwrap()).unwrap();
                prop_assert_eq!(again, Body::Single(m));
            }
        }

        #[test]
        fn valid_requests_always_classify(id in any::<i64>(), method in "[a-z/_]{1,20}") {
            let m = classify(json!({"jsonrpc":"2.0","id":id,"method":method.clone()})).unwrap();
            prop_assert_eq!(m.kind, Kind::Request { id: json!(id), method });
        }
    }
}
