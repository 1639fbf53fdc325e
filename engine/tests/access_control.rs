//! Per-farm access over real connections: a user of one farm gets nothing of another farm
//! through any endpoint or WebSocket subscription, and forged, expired or foreign tokens get
//! nothing at all. Tokens come from the engine's local issuer and, for the external-issuer
//! path, from a JWKS file and a JWKS URL with Cognito-shaped claims.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestEngine, feed_bin_rules, mosquitto_addr, publish_once, unique_prefix, wait_until};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};
use valmetal_engine::auth::{AuthMode, LocalIssuer, LocalUser, Role};

const FEED_BIN: &str = "feedbin-001";
const MACHINE: &str = "machine-01";

/// Endpoints that must refuse a caller without a valid token, with the method used.
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/devices/feedbin-001"),
    ("GET", "/api/v1/devices/feedbin-001/telemetry"),
    ("PUT", "/api/v1/devices/feedbin-001/desired"),
    ("GET", "/api/v1/alarms"),
    ("GET", "/api/v1/rules"),
    ("GET", "/api/v1/notifications"),
    ("POST", "/api/v1/devices"),
];

struct Fixture {
    engine: TestEngine,
    issuer: LocalIssuer,
}

impl Fixture {
    /// An engine in local mode with one device in farm `odrc` and one in farm `nab`.
    async fn start(test: &str) -> Self {
        let broker = mosquitto_addr();
        let prefix = unique_prefix(test);
        let engine =
            TestEngine::start_with(broker.clone(), &prefix, feed_bin_rules("1h"), |config| {
                config.auth.mode = AuthMode::Local;
            })
            .await;
        let issuer =
            LocalIssuer::load_or_create(engine.data_dir(), Duration::from_secs(3600)).unwrap();
        let now = valmetal_actors::clock::now_ms();
        for (device, key) in [(FEED_BIN, "end_weight_kg"), (MACHINE, "temperature")] {
            let payload = json!({"ts": now, "values": {key: 42.0}}).to_string();
            let topic = format!("{prefix}/{device}/telemetry");
            publish_once(&broker, &format!("{prefix}-seed"), &topic, payload).await;
        }
        let hub = std::sync::Arc::clone(engine.engine.hub());
        wait_until(Duration::from_secs(10), || hub.device_count() == 2).await;
        Self { engine, issuer }
    }

    fn addr(&self) -> SocketAddr {
        self.engine.http_addr()
    }

    fn token(&self, role: Role, farms: &[&str]) -> String {
        let user = LocalUser {
            name: format!("{}-user", role.as_str()),
            role,
            farms: farms.iter().map(|farm| (*farm).to_owned()).collect(),
        };
        self.issuer.sign(&user).unwrap()
    }
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}{path}");
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn device_ids(body: &Value) -> Vec<String> {
    body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["device"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_forged_tokens_get_nothing() {
    let fixture = Fixture::start("auth-forged").await;
    let addr = fixture.addr();
    let admin = fixture.token(Role::Admin, &[]);
    let viewer = fixture.token(Role::FarmViewer, &["odrc"]);

    // Claims changed after signing: the viewer claims every farm as an admin.
    let parts: Vec<&str> = viewer.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["custom:role"] = json!("admin");
    claims["custom:farms"] = json!("*");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    // No signature at all.
    let unsigned_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{unsigned_header}.{}.", parts[1]);
    // Signed by another engine's key.
    let other_dir = tempfile::tempdir().unwrap();
    let stranger =
        LocalIssuer::load_or_create(other_dir.path(), Duration::from_secs(3600)).unwrap();
    let foreign = stranger
        .sign(&LocalUser {
            name: "x".into(),
            role: Role::Admin,
            farms: Vec::new(),
        })
        .unwrap();
    // Signed by the right key, but expired an hour ago.
    let now = valmetal_actors::clock::now_ms() / 1000;
    let expired = fixture
        .issuer
        .sign_claims(&json!({
            "iss": "valmetal-local", "aud": "valmetal-dashboard", "sub": "late", "token_use": "id",
            "custom:role": "admin", "iat": now - 7200, "exp": now - 3600,
        }))
        .unwrap();
    // Signed by the right key for another audience.
    let elsewhere = fixture
        .issuer
        .sign_claims(&json!({
            "iss": "valmetal-local", "aud": "another-app", "sub": "x", "token_use": "id",
            "custom:role": "admin", "iat": now, "exp": now + 600,
        }))
        .unwrap();

    for (method, path) in PROTECTED {
        let (status, body) = call(addr, method, path, None, Some(json!({}))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
        for (label, token) in [
            ("tampered", &tampered),
            ("unsigned", &unsigned),
            ("foreign", &foreign),
            ("other audience", &elsewhere),
        ] {
            let (status, body) = call(addr, method, path, Some(token), Some(json!({}))).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (401, Some("invalid_token")),
                "{label}: {method} {path}"
            );
        }
        let (status, body) = call(addr, method, path, Some(&expired), Some(json!({}))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("token_expired")),
            "{method} {path}"
        );
    }
    for token in [None, Some(&tampered), Some(&expired), Some(&foreign)] {
        let url = match token {
            Some(token) => format!("ws://{addr}/ws?access_token={token}"),
            None => format!("ws://{addr}/ws"),
        };
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 401),
            other => panic!(
                "the WebSocket opened without a valid token: {:?}",
                other.map(|_| ())
            ),
        }
    }
    let (status, me) = call(addr, "GET", "/api/v1/me", Some(&admin), None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("admin")));
    fixture.engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_of_one_farm_sees_nothing_of_another() {
    let fixture = Fixture::start("auth-farms").await;
    let addr = fixture.addr();
    let viewer = fixture.token(Role::FarmViewer, &["odrc"]);
    let admin = fixture.token(Role::Admin, &[]);

    let (_, all) = call(addr, "GET", "/api/v1/devices", Some(&admin), None).await;
    assert_eq!(device_ids(&all), vec![FEED_BIN, MACHINE]);
    let (_, own) = call(addr, "GET", "/api/v1/devices", Some(&viewer), None).await;
    assert_eq!(device_ids(&own), vec![FEED_BIN]);
    let (_, filtered) = call(addr, "GET", "/api/v1/devices?farm=nab", Some(&viewer), None).await;
    assert_eq!(device_ids(&filtered), Vec::<String>::new());

    for path in [
        format!("/api/v1/devices/{MACHINE}"),
        format!("/api/v1/devices/{MACHINE}/telemetry"),
        format!("/api/v1/alarms?device={MACHINE}"),
        format!("/api/v1/alarms/{MACHINE}/hot/1"),
    ] {
        let (status, body) = call(addr, "GET", &path, Some(&viewer), None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = call(
        addr,
        "GET",
        &format!("/api/v1/devices/{FEED_BIN}"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // A viewer changes nothing, in or out of their farm; out of it, the device is unknown.
    let desired = json!({"desired": {"speed": 10}});
    let (status, body) = call(
        addr,
        "PUT",
        &format!("/api/v1/devices/{FEED_BIN}/desired"),
        Some(&viewer),
        Some(desired.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = call(
        addr,
        "PUT",
        &format!("/api/v1/devices/{MACHINE}/desired"),
        Some(&viewer),
        Some(desired.clone()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        addr,
        "POST",
        &format!("/api/v1/alarms/{MACHINE}/hot/1/acknowledge"),
        Some(&viewer),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);

    // An operator of the other farm acts there and nowhere else.
    let operator = fixture.token(Role::Operator, &["nab"]);
    let (status, _) = call(
        addr,
        "PUT",
        &format!("/api/v1/devices/{MACHINE}/desired"),
        Some(&operator),
        Some(desired.clone()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        addr,
        "PUT",
        &format!("/api/v1/devices/{FEED_BIN}/desired"),
        Some(&operator),
        Some(desired),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        addr,
        "POST",
        "/api/v1/devices",
        Some(&operator),
        Some(json!({"id": "fan-9", "farm": "nab"})),
    )
    .await;
    assert_eq!(status, 403);
    fixture.engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_shows_only_own_farm_live() {
    let broker = mosquitto_addr();
    let fixture = Fixture::start("auth-ws").await;
    let addr = fixture.addr();
    let viewer = fixture.token(Role::FarmViewer, &["odrc"]);
    let url = format!("ws://{addr}/ws?access_token={viewer}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    read_until(&mut socket, "hello").await;
    let send = json!({"type": "subscribe", "all": true}).to_string();
    socket.send(Message::Text(send.into())).await.unwrap();
    let snapshot = read_until(&mut socket, "snapshot").await;
    let devices: Vec<&str> = snapshot["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, vec![FEED_BIN]);

    let send = json!({"type": "subscribe", "devices": [MACHINE]}).to_string();
    socket.send(Message::Text(send.into())).await.unwrap();
    let refused = read_until(&mut socket, "error").await;
    assert_eq!(refused["code"], "device_not_permitted");

    // New frames of both farms: only the feed bin's reaches the viewer.
    let prefix = fixture.engine.config.mqtt.topic_prefix.clone();
    let now = valmetal_actors::clock::now_ms() + 1000;
    let machine = json!({"ts": now, "values": {"temperature": 99.0}}).to_string();
    publish_once(
        &broker,
        &format!("{prefix}-m"),
        &format!("{prefix}/{MACHINE}/telemetry"),
        machine,
    )
    .await;
    let bin = json!({"ts": now, "values": {"end_weight_kg": 41.0}}).to_string();
    publish_once(
        &broker,
        &format!("{prefix}-b"),
        &format!("{prefix}/{FEED_BIN}/telemetry"),
        bin,
    )
    .await;
    let update = read_until(&mut socket, "update").await;
    assert_eq!(update["device"], FEED_BIN);
    fixture.engine.engine.shutdown().await;
}

async fn read_until<S>(socket: &mut S, kind: &str) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` within 5s"))
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if value["type"] == kind {
                return value;
            }
            assert_ne!(
                value["type"], "update",
                "an update came before the `{kind}`: {value}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_closes_socket_with_4401() {
    let fixture = Fixture::start("auth-expiry").await;
    let now = valmetal_actors::clock::now_ms() / 1000;
    let short = fixture
        .issuer
        .sign_claims(&json!({
            "iss": "valmetal-local", "aud": "valmetal-dashboard", "sub": "brief", "token_use": "id",
            "custom:role": "admin", "iat": now, "exp": now + 2,
        }))
        .unwrap();
    let url = format!("ws://{}/ws?access_token={short}", fixture.addr());
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame.map(|frame| u16::from(frame.code));
            }
        }
        None
    })
    .await
    .expect("the socket closes after the token's expiry and leeway");
    assert_eq!(closed, Some(4401));
    fixture.engine.engine.shutdown().await;
}

/// Cognito-shaped tokens checked against a JWKS file and a JWKS URL: an access token matches
/// by `client_id`, the role comes from `cognito:groups`, and farms from `custom:farms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_tokens_verify_by_jwks_file_and_url() {
    let keys_dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::load_or_create(keys_dir.path(), Duration::from_secs(3600)).unwrap();
    let jwks_path = keys_dir.path().join("jwks.json");
    std::fs::write(&jwks_path, issuer.jwks().to_string()).unwrap();
    let jwks = issuer.jwks();
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", server.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    tokio::spawn(async move { axum::serve(server, app).await.unwrap() });

    let pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test";
    let now = valmetal_actors::clock::now_ms() / 1000;
    let access = issuer
        .sign_claims(&json!({
            "iss": pool, "client_id": "dashboard-client", "token_use": "access", "sub": "u-1",
            "username": "alice", "cognito:groups": ["operator"], "custom:farms": "nab",
            "iat": now, "exp": now + 600,
        }))
        .unwrap();
    let wrong_client = issuer
        .sign_claims(&json!({
            "iss": pool, "client_id": "other-client", "token_use": "access", "sub": "u-1",
            "cognito:groups": ["admin"], "iat": now, "exp": now + 600,
        }))
        .unwrap();
    for (label, source) in [("file", Some(jwks_path.clone())), ("url", None)] {
        let broker = mosquitto_addr();
        let prefix = unique_prefix(&format!("auth-cognito-{label}"));
        let url = jwks_url.clone();
        let engine = TestEngine::start_with(broker, &prefix, feed_bin_rules("1h"), |config| {
            config.auth.mode = AuthMode::Jwt;
            config.auth.issuer = Some(pool.to_owned());
            config.auth.audience = vec!["dashboard-client".to_owned()];
            match source {
                Some(path) => config.auth.jwks_file = Some(path),
                None => config.auth.jwks_url = Some(url),
            }
        })
        .await;
        let (status, me) = call(engine.http_addr(), "GET", "/api/v1/me", Some(&access), None).await;
        assert_eq!(status, 200, "{label}: {me}");
        assert_eq!(
            (me["role"].as_str(), me["name"].as_str()),
            (Some("operator"), Some("alice"))
        );
        assert_eq!(me["farms"], json!(["nab"]));
        let (status, body) = call(
            engine.http_addr(),
            "GET",
            "/api/v1/me",
            Some(&wrong_client),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{label}"
        );
        engine.engine.shutdown().await;
    }
}
