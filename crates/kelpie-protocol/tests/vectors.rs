//! The protocol's test vectors, shared with the web client: `vectors/messages.json` is read
//! here and by the client's own tests (`web/src/vectors.test.ts`), so a change on either side
//! that the other does not follow fails a test.
//!
//! - `client.valid`: what the browser sends; each parses, and serializes back to exactly the
//!   same JSON (so the client's encoder and the server's definitions agree field by field).
//! - `client.invalid`: texts the server refuses.
//! - `server.valid`: what the server sends; each is a `ServerMessage` that serializes to
//!   exactly that JSON.
//! - `server.invalid`: texts the client refuses; the server never produces them either.

use kelpie_protocol::{ClientMessage, ServerMessage};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/messages.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_json::from_str(&text).expect("vectors/messages.json is JSON")
}

fn list<'a>(v: &'a Value, side: &str, kind: &str) -> &'a Vec<Value> {
    let l = v[side][kind].as_array().unwrap_or_else(|| panic!("no {side}.{kind} list"));
    assert!(!l.is_empty(), "{side}.{kind} is empty");
    l
}

fn name(v: &Value) -> &str {
    v["name"].as_str().expect("every vector has a name")
}

#[test]
fn every_client_message_the_browser_sends_parses_and_round_trips() {
    let v = vectors();
    for case in list(&v, "client", "valid") {
        let json = &case["json"];
        let text = json.to_string();
        let msg =
            ClientMessage::parse(&text).unwrap_or_else(|e| panic!("{}: {text} refused: {e}", name(case)));
        let back = serde_json::to_value(&msg).expect("client messages serialize");
        assert_eq!(&back, json, "{}: serializes differently", name(case));
    }
}

#[test]
fn every_variant_of_client_message_has_a_vector() {
    let v = vectors();
    let mut types: Vec<String> = list(&v, "client", "valid")
        .iter()
        .map(|c| c["json"]["type"].as_str().expect("tagged").to_string())
        .collect();
    types.sort();
    types.dedup();
    let all = [
        "ack",
        "audiodelay",
        "button",
        "candidate",
        "clipboard",
        "gamepad",
        "give_control",
        "key",
        "keyframe",
        "keys",
        "mouse",
        "mouserel",
        "offer",
        "pair",
        "pair_ticket",
        "rate",
        "record",
        "release",
        "request_control",
        "resize",
        "text",
        "viewerstats",
        "wheel",
        "wsvideo",
    ];
    assert_eq!(types, all, "the vectors must cover every client message type");
}

#[test]
fn client_messages_the_server_refuses() {
    let v = vectors();
    for case in list(&v, "client", "invalid") {
        let text = case["text"].as_str().expect("invalid vectors are raw text");
        assert!(ClientMessage::parse(text).is_err(), "{}: {text} was accepted", name(case));
    }
}

#[test]
fn every_server_message_the_client_parses_is_what_the_server_sends() {
    let v = vectors();
    for case in list(&v, "server", "valid") {
        let json = &case["json"];
        let msg: ServerMessage = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("{}: not a server message: {e}", name(case)));
        let back: Value = serde_json::from_str(&msg.to_json()).expect("JSON");
        assert_eq!(&back, json, "{}: the server sends it differently", name(case));
    }
}

#[test]
fn server_messages_the_client_refuses_are_not_server_messages() {
    let v = vectors();
    for case in list(&v, "server", "invalid") {
        let text = case["text"].as_str().expect("invalid vectors are raw text");
        if let Ok(msg) = serde_json::from_str::<ServerMessage>(text) {
            // Serde may read a text the client refuses for a bound the Rust types do not carry
            // (such cases stay in the web client's own tests); a vector here must not be one
            // the server could send as it is.
            let sent: Value = serde_json::from_str(&msg.to_json()).expect("JSON");
            let refused: Value = serde_json::from_str(text).expect("JSON");
            assert_ne!(sent, refused, "{}: the server could send what the client refuses", name(case));
        }
    }
}
