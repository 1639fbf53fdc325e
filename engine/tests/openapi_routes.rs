//! Checks the OpenAPI document served at `/api/v1/openapi.json` against the router. Every
//! path and method it lists must be routed. Every status and error code the engine returns
//! for a plain request must be among the operation's documented responses.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::net::SocketAddr;

use common::{TestEngine, feed_bin_rules, mosquitto_addr, unique_prefix};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use valmetal_engine::auth::AuthMode;
use valmetal_engine::http::openapi::DOCUMENT;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "options", "head", "trace",
];

/// Start of the message the router's fallback returns for a path that no route matches.
const NO_ROUTE_MESSAGE: &str = "no route for";

/// The engine's reply to one documented operation.
struct Reply {
    /// `METHOD /template`, as the document names the operation.
    operation: String,
    /// The path sent, with its parameters filled in.
    path: String,
    status: u16,
    text: String,
    body: Value,
    /// The operation's response for `status`, if the document lists one.
    response: Option<Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let document = parse_document();
    let engine = start_engine("openapi-routes").await;
    let replies = call_every_operation(engine.http_addr(), &document).await;

    let unrouted: Vec<String> = replies
        .iter()
        .filter(|reply| is_router_fallback(reply))
        .map(|reply| format!("{} (sent {})", reply.operation, reply.path))
        .collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed (404 from the fallback): {unrouted:#?}"
    );

    let wrong_method: Vec<String> = replies
        .iter()
        .filter(|reply| reply.status == 405)
        .map(|reply| format!("{} (sent {})", reply.operation, reply.path))
        .collect();
    assert!(
        wrong_method.is_empty(),
        "documented method not allowed (405): {wrong_method:#?}"
    );

    engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_match_documented_responses() {
    let document = parse_document();
    let engine = start_engine("openapi-responses").await;
    let replies = call_every_operation(engine.http_addr(), &document).await;

    let undocumented_status: Vec<String> = replies
        .iter()
        .filter(|reply| reply.response.is_none())
        .map(|reply| format!("{}: {} {}", reply.operation, reply.status, reply.text))
        .collect();
    assert!(
        undocumented_status.is_empty(),
        "statuses missing from the operation's responses: {undocumented_status:#?}"
    );

    let undocumented_code: Vec<String> = replies
        .iter()
        .filter_map(|reply| {
            let code = reply.body["error"]["code"].as_str()?;
            let description = reply.response.as_ref()?["description"].as_str()?;
            (!description.contains(&format!("`{code}`")))
                .then(|| format!("{}: {} `{code}`", reply.operation, reply.status))
        })
        .collect();
    assert!(
        undocumented_code.is_empty(),
        "error codes missing from the response's description: {undocumented_code:#?}"
    );

    engine.engine.shutdown().await;
}

fn parse_document() -> Value {
    let document: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON");
    assert!(
        document["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "the document declares OpenAPI 3.1: {}",
        document["openapi"]
    );
    let paths = document["paths"]
        .as_object()
        .expect("the document has `paths`");
    assert!(!paths.is_empty(), "the document lists no paths");
    document
}

/// Starts an engine with authentication off, so that every caller is an admin and the
/// handlers, not the auth layer, produce the replies.
async fn start_engine(test: &str) -> TestEngine {
    TestEngine::start_with(
        mosquitto_addr(),
        &unique_prefix(test),
        feed_bin_rules("1h"),
        |config| config.auth.mode = AuthMode::Off,
    )
    .await
}

/// Sends one request per documented path and method: path parameters filled from the
/// document, and the JSON body `{}` where the operation takes a body.
async fn call_every_operation(addr: SocketAddr, document: &Value) -> Vec<Reply> {
    let paths = document["paths"]
        .as_object()
        .expect("the document has `paths`");
    let mut replies = Vec::new();
    for (template, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let path = fill_path(template, item, operation);
            let body = operation.get("requestBody").map(|_| json!({}));
            let (status, text) = send(addr, method, &path, body.as_ref()).await;
            replies.push(Reply {
                operation: format!("{} {template}", method.to_uppercase()),
                path,
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
                response: documented_response(document, operation, status).cloned(),
            });
        }
    }
    replies
}

/// Returns true for the router's own 404, as opposed to a handler's 404 for an unknown
/// device, alarm or action.
fn is_router_fallback(reply: &Reply) -> bool {
    reply.status == 404
        && reply.body["error"]["code"] == "not_found"
        && reply.body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with(NO_ROUTE_MESSAGE))
}

/// Replaces each `{name}` of `template` with the parameter's `example`, else the first value
/// of its `enum`, else a value of its type.
fn fill_path(template: &str, item: &Value, operation: &Value) -> String {
    let parameters = item["parameters"]
        .as_array()
        .into_iter()
        .chain(operation["parameters"].as_array())
        .flatten();
    let mut path = template.to_owned();
    for parameter in parameters {
        if parameter["in"] != "path" {
            continue;
        }
        let name = parameter["name"]
            .as_str()
            .expect("a path parameter has a name");
        let value = match (&parameter["example"], &parameter["schema"]["enum"][0]) {
            (Value::String(text), _) => text.clone(),
            (Value::Number(number), _) => number.to_string(),
            (_, Value::String(text)) => text.clone(),
            _ if parameter["schema"]["type"] == "integer" => "1".to_owned(),
            _ => "x".to_owned(),
        };
        path = path.replace(&format!("{{{name}}}"), &value);
    }
    assert!(
        !path.contains('{'),
        "`{template}` has a path parameter the document does not declare: {path}"
    );
    path
}

/// Returns the operation's response for `status` (or its `default`), with a `$ref` to
/// `#/components/responses/` resolved.
fn documented_response<'a>(
    document: &'a Value,
    operation: &'a Value,
    status: u16,
) -> Option<&'a Value> {
    let responses = &operation["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))?;
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/responses/")?;
            document["components"]["responses"].get(name)
        }
        None => Some(response),
    }
}

/// Sends one HTTP/1.1 request, with a JSON body if given, and returns the status and the
/// body as text.
async fn send(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let method = method.to_uppercase();
    let request = match body {
        Some(body) => {
            let body = body.to_string();
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
        None => format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    };
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: reply without a header end: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: reply without a status: {head:?}"));
    (status, body.to_owned())
}
