//! The webhook client against a local HTTP receiver: the delivery id on every attempt, no
//! redirect followed, a 302 never counted as delivered, refused destinations (issue 19,
//! reproductions 9 and 11).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use callrec_serve::records::RecordRequest;
use callrec_serve::webhook::{Destinations, WebhookConfig, Webhooks};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// What a receiver saw: (path, Callrec-Delivery header, body) per request.
type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

#[derive(Clone)]
struct Receiver {
    seen: Seen,
    /// Where `/redirect-*` points.
    elsewhere: String,
}

async fn handle(State(r): State<Receiver>, headers: HeaderMap, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let delivery = headers
        .get("callrec-delivery")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let count = {
        let mut seen = r.seen.lock().unwrap();
        seen.push((path.clone(), delivery, body));
        seen.iter().filter(|(p, _, _)| *p == path).count()
    };
    match path.as_str() {
        // Answers only after the client's timeout (200 ms), twice; then at once.
        "/slow" if count <= 2 => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        "/redirect-307" => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", format!("{}/stolen", r.elsewhere))],
        )
            .into_response(),
        "/redirect-308-same" => {
            (StatusCode::PERMANENT_REDIRECT, [("location", "/ok")]).into_response()
        }
        "/found-302" => (StatusCode::FOUND, [("location", "/ok")]).into_response(),
        "/see-other-303" => (StatusCode::SEE_OTHER, [("location", "/ok")]).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A receiver on a free loopback port; returns its base URL and what it saw.
async fn receiver(elsewhere: &str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(handle).with_state(Receiver {
        seen: seen.clone(),
        elsewhere: elsewhere.to_string(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn config(attempts: u32) -> WebhookConfig {
    WebhookConfig {
        timeout: Duration::from_millis(200),
        attempts,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        ..WebhookConfig::default()
    }
}

/// A client that may reach the loopback receivers (as with `--app-url http://127.0.0.1:...`).
fn client(attempts: u32, base: &str) -> Webhooks {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Webhooks::new(config(attempts), Some(&Url::parse(base).unwrap())).unwrap()
}

const RESULT: &str = r#"{"action":"record","result":{"id":"","filename":"/f.wav","file_available":false,"contains_sound":true,"seconds_duration":1.0,"reason":"hangup"}}"#;

#[tokio::test]
async fn every_attempt_to_a_slow_app_carries_the_same_delivery_id() {
    let (base, seen) = receiver("").await;
    let hooks = client(4, &base);
    let url = Url::parse(&format!("{base}/slow")).unwrap();
    assert!(
        hooks
            .deliver("rec-1-finished", "next_page", &url, RESULT)
            .await
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two timeouts, then the answer");
    for (_, delivery, body) in &seen {
        assert_eq!(delivery.as_deref(), Some("rec-1-finished"));
        assert_eq!(body, &format!("{{\"action_result\":{RESULT}}}"));
    }
    assert_eq!(hooks.stats.retries.load(Ordering::Relaxed), 2);
    assert_eq!(hooks.stats.delivered.load(Ordering::Relaxed), 1);
    assert_eq!(hooks.stats.failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_never_followed() {
    let (other, stolen) = receiver("").await;
    let (base, seen) = receiver(&other).await;
    let hooks = client(2, &base);
    let url = Url::parse(&format!("{base}/redirect-307")).unwrap();
    assert!(!hooks.deliver("d", "next_page", &url, RESULT).await);
    assert_eq!(
        stolen.lock().unwrap().len(),
        0,
        "nothing re-POSTed elsewhere"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "two attempts, both to the page"
    );
    assert_eq!(hooks.stats.delivered.load(Ordering::Relaxed), 0);
    assert_eq!(hooks.stats.failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn no_redirect_is_followed_or_counted_as_delivered() {
    let (base, seen) = receiver("").await;
    let hooks = client(1, &base);
    for path in ["/redirect-308-same", "/found-302", "/see-other-303"] {
        let url = Url::parse(&format!("{base}{path}")).unwrap();
        assert!(
            !hooks.deliver("d", "next_page", &url, RESULT).await,
            "{path}"
        );
    }
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/redirect-308-same", "/found-302", "/see-other-303"]
    );
    assert_eq!(hooks.stats.delivered.load(Ordering::Relaxed), 0);
    assert_eq!(hooks.stats.failures.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
    let (base, seen) = receiver("").await;
    let port = Url::parse(&base).unwrap().port().unwrap();
    let url = Url::parse(&format!("http://localhost:{port}/ok")).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No --app-url, nothing allowed: the resolver drops loopback addresses.
    let hooks = Webhooks::new(config(1), None).unwrap();
    assert!(!hooks.deliver("d", "next_page", &url, RESULT).await);
    assert_eq!(seen.lock().unwrap().len(), 0, "never connected");
    assert_eq!(hooks.stats.failures.load(Ordering::Relaxed), 1);
    // Allowed by name, or with --webhook-allow-private, it is delivered.
    let allowed = WebhookConfig {
        allow_hosts: vec!["LocalHost".into()],
        ..config(1)
    };
    let hooks = Webhooks::new(allowed, None).unwrap();
    assert!(hooks.deliver("d", "next_page", &url, RESULT).await);
    let private = WebhookConfig {
        allow_private: true,
        ..config(1)
    };
    let hooks = Webhooks::new(private, None).unwrap();
    assert!(hooks.deliver("d", "next_page", &url, RESULT).await);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_literal_refused_address_is_never_contacted() {
    let (base, seen) = receiver("").await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hooks = Webhooks::new(config(1), None).unwrap();
    let url = Url::parse(&format!("{base}/ok")).unwrap();
    assert!(!hooks.deliver("d", "next_page", &url, RESULT).await);
    assert_eq!(seen.lock().unwrap().len(), 0);
}

fn post(url: &str) -> String {
    format!(r#"{{"record":{{"next_page":{{"url":"{url}"}}}}}}"#)
}

fn refusal(body: &str, app_url: Option<&str>, config: &WebhookConfig) -> Option<(u16, String)> {
    let app = app_url.map(|u| Url::parse(u).unwrap());
    let destinations = Destinations::new(config, app.as_ref()).unwrap();
    RecordRequest::parse(body.as_bytes(), app.as_ref(), &destinations)
        .err()
        .map(|r| (r.status, r.field.unwrap_or_default()))
}

#[test]
fn a_post_with_a_refused_destination_is_a_400_naming_the_page() {
    let none = WebhookConfig::default();
    let field = Some((400, "record.next_page.url".to_string()));
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://localhost:8080/",
        "http://LOCALHOST./",
        "http://2130706433/",
        "http://0x7f000001/",
    ] {
        assert_eq!(refusal(&post(url), None, &none), field, "{url}");
    }
    let available = r#"{"record":{"recording_available_page":{"url":"http://169.254.169.254/"}}}"#;
    assert_eq!(
        refusal(available, None, &none),
        Some((400, "record.recording_available_page.url".to_string()))
    );
    for url in ["http://93.184.216.34/hook", "https://example.com/hook"] {
        assert_eq!(refusal(&post(url), None, &none), None, "{url}");
    }
    // The --app-url host is allowed, relative or absolute, on loopback.
    let app = Some("http://127.0.0.1:9000/app/");
    assert_eq!(refusal(&post("next"), app, &none), None);
    assert_eq!(refusal(&post("http://127.0.0.1:9001/x"), app, &none), None);
    assert_eq!(refusal(&post("http://127.0.0.2/x"), app, &none), field);
    // --webhook-allow-private: private and loopback, never link-local.
    let private = WebhookConfig {
        allow_private: true,
        ..WebhookConfig::default()
    };
    assert_eq!(refusal(&post("http://10.1.2.3/"), None, &private), None);
    assert_eq!(refusal(&post("http://localhost/"), None, &private), None);
    assert_eq!(
        refusal(&post("http://169.254.169.254/"), None, &private),
        field
    );
    // --webhook-allow-host names one.
    let host = WebhookConfig {
        allow_hosts: vec!["169.254.169.254".into(), "[fe80::1]".into()],
        ..WebhookConfig::default()
    };
    assert_eq!(refusal(&post("http://169.254.169.254/"), None, &host), None);
    assert_eq!(refusal(&post("http://[fe80::1]/"), None, &host), None);
    assert_eq!(
        refusal(&post("http://169.254.169.253/"), None, &host),
        field
    );
}

#[test]
fn a_bad_allow_host_is_refused_naming_the_flag() {
    let bad = WebhookConfig {
        allow_hosts: vec!["http://x/".into()],
        ..WebhookConfig::default()
    };
    let e = Destinations::new(&bad, None).unwrap_err();
    assert!(e.starts_with("--webhook-allow-host"), "{e}");
}
