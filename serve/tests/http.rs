//! The HTTP side of `callrec serve` against hostile or careless clients (issue 19, items 10, 12,
//! 13): every error is JSON naming the field, the `Bearer` scheme in any case, 413 before
//! `100 Continue`, oversized heads and slow bodies bounded, downloads that follow no symlink.
//! Each test talks raw HTTP/1.1 over TCP to an in-process server, so what is checked is exactly
//! what went over the wire.

mod common;

use common::{Server, TOKEN};
use std::io::{Read, Write};

fn assert_json_error(reply: &common::Reply, status: u16, field: Option<&str>) {
    assert_eq!(
        reply.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    let json = reply.json();
    let error = json["error"].as_str().expect("an error message");
    assert!(!error.is_empty());
    assert_eq!(json.get("field").and_then(|f| f.as_str()), field, "{json}");
}

#[test]
fn unknown_route_wrong_method_and_bad_path_are_json() {
    let server = Server::start(4, |_| {});
    let auth = Server::auth();
    assert_json_error(&server.get("/nope", &[&auth]), 404, None);
    let reply = server.get("/v1/records", &[&auth]);
    assert_json_error(&reply, 405, None);
    assert_eq!(reply.header("allow"), Some("POST"));
    // Percent-encoded bytes that are not UTF-8: axum's "Invalid URL" rejection.
    assert_json_error(&server.get("/v1/records/%FF%FE", &[&auth]), 400, None);
}

#[test]
fn bodies_too_large_of_the_wrong_type_or_bad_are_json() {
    let server = Server::start(4, |c| c.body_limit = 4096);
    let auth = Server::auth();
    let big = vec![b' '; 5000];
    assert_json_error(
        &server.request("POST", "/v1/records", &[&auth], &big),
        413,
        Some("body"),
    );
    assert_json_error(
        &server.request(
            "POST",
            "/v1/records",
            &[&auth, "Content-Type: text/plain"],
            b"{\"record\": {}}",
        ),
        415,
        Some("Content-Type"),
    );
    assert_json_error(
        &server.request(
            "POST",
            "/v1/records",
            &[&auth, "Content-Type: application/json"],
            b"{\"record\": ",
        ),
        400,
        Some("body"),
    );
    // curl -d's default type is read as JSON (the README's examples use it).
    let reply = server.request(
        "POST",
        "/v1/records",
        &[&auth, "Content-Type: application/x-www-form-urlencoded"],
        b"{\"record\": {}}",
    );
    assert_eq!(
        reply.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[test]
fn oversized_heads_are_431_json() {
    let server = Server::start(4, |c| c.http.max_header_bytes = 8192);
    let auth = Server::auth();
    // More headers than the limit (hyper's own default limit is 100, answered with no body).
    let many: Vec<String> = (0..150).map(|i| format!("X-Filler-{i}: {i}")).collect();
    let mut headers: Vec<&str> = many.iter().map(String::as_str).collect();
    headers.push(&auth);
    assert_json_error(&server.get("/metrics", &headers), 431, Some("headers"));
    // One header over the byte limit.
    let long = format!("X-Long: {}", "a".repeat(9000));
    assert_json_error(
        &server.get("/metrics", &[&auth, &long]),
        431,
        Some("headers"),
    );
    // Just under it: served.
    let fits = format!("X-Long: {}", "a".repeat(6000));
    assert_eq!(server.get("/metrics", &[&auth, &fits]).status, 200);
}

#[test]
fn bearer_scheme_in_any_case_and_wrong_tokens_refused() {
    let server = Server::start(4, |_| {});
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let header = format!("Authorization: {scheme} {TOKEN}");
        assert_eq!(server.get("/metrics", &[&header]).status, 200, "{scheme}");
    }
    let wrong = [
        format!("Authorization: Bearer {TOKEN}x"),
        format!("Authorization: Basic {TOKEN}"),
        format!("Authorization: Bearer{TOKEN}"),
        "Authorization: Bearer ".to_string(),
    ];
    for header in &wrong {
        let reply = server.get("/metrics", &[header]);
        assert_json_error(&reply, 401, None);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    assert_json_error(&server.get("/metrics", &[]), 401, None);
}

#[test]
fn expect_continue_with_a_huge_length_gets_413_and_no_100_continue() {
    let server = Server::start(4, |_| {});
    let mut s = server.connect();
    write!(
        s,
        "POST /v1/records HTTP/1.1\r\nHost: test\r\n{}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n",
        Server::auth()
    )
    .unwrap();
    // The client sends no body: the server must answer without waiting for one.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let first = String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(first.starts_with("HTTP/1.1 413"), "first line: {first:?}");
}

#[test]
fn a_body_that_stops_coming_is_answered_and_the_connection_closed() {
    let server = Server::start(4, |c| {
        c.http.body_timeout = std::time::Duration::from_millis(500)
    });
    let mut s = server.connect();
    write!(
        s,
        "POST /v1/records HTTP/1.1\r\nHost: test\r\n{}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"record\"",
        Server::auth()
    )
    .unwrap();
    // Nothing more is sent; the answer comes and the server closes (read ends) within GUARD.
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the server closes the connection");
    let reply = common::Reply::parse(&out);
    assert!(
        reply.status == 408 || reply.status == 400,
        "{reply:?} {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

/// A store name for test files: `YYYY/MM/DD/HH_MM_SS_<16 hex>.<5 digits>.wav`.
const DAY: &str = "2026/12/05";
const NAME: &str = "10_00_00_0123456789abcdef.00001.wav";

#[test]
fn downloads_serve_store_files_and_refuse_symlinks() {
    let server = Server::start(4, |_| {});
    let auth = Server::auth();
    let recordings = server.store.join(callrec::store::RECORDINGS_DIR);
    let outside = common::temp_dir("outside");
    std::fs::write(outside.join(NAME), b"SECRET outside the store").unwrap();
    std::fs::create_dir_all(recordings.join(DAY)).unwrap();
    let contents: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(recordings.join(DAY).join(NAME), &contents).unwrap();

    // A real file: served whole, and ranges work.
    let url = format!("/rest_api/recordings/{DAY}/{NAME}");
    let reply = server.get(&url, &[&auth]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, contents);
    assert_eq!(reply.header("content-type"), Some("audio/wav"));
    let reply = server.get(&url, &[&auth, "Range: bytes=100-199"]);
    assert_eq!(reply.status, 206);
    assert_eq!(reply.body, &contents[100..200]);

    // A file that is a symlink to a file outside the store.
    let link_name = "10_00_01_0123456789abcdef.00001.wav";
    std::os::unix::fs::symlink(outside.join(NAME), recordings.join(DAY).join(link_name)).unwrap();
    let reply = server.get(&format!("/rest_api/recordings/{DAY}/{link_name}"), &[&auth]);
    assert_json_error(&reply, 404, None);
    // ... or to /etc/passwd.
    let passwd = "10_00_02_0123456789abcdef.00001.wav";
    std::os::unix::fs::symlink("/etc/passwd", recordings.join(DAY).join(passwd)).unwrap();
    assert_json_error(
        &server.get(&format!("/rest_api/recordings/{DAY}/{passwd}"), &[&auth]),
        404,
        None,
    );
    // A day directory that is a symlink to a directory outside the store.
    std::os::unix::fs::symlink(&outside, recordings.join("2026/12/06")).unwrap();
    assert_json_error(
        &server.get(&format!("/rest_api/recordings/2026/12/06/{NAME}"), &[&auth]),
        404,
        None,
    );
    // A year directory that is one.
    std::fs::create_dir_all(outside.join("01/01")).unwrap();
    std::fs::write(outside.join("01/01").join(NAME), b"SECRET").unwrap();
    std::os::unix::fs::symlink(&outside, recordings.join("2025")).unwrap();
    assert_json_error(
        &server.get(&format!("/rest_api/recordings/2025/01/01/{NAME}"), &[&auth]),
        404,
        None,
    );
    // A FIFO with a store name: not a regular file, refused without hanging.
    let fifo = recordings
        .join(DAY)
        .join("10_00_03_0123456789abcdef.00001.wav");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    assert_json_error(
        &server.get(
            &format!("/rest_api/recordings/{DAY}/10_00_03_0123456789abcdef.00001.wav"),
            &[&auth],
        ),
        404,
        None,
    );
    let _ = std::fs::remove_dir_all(&outside);
}

#[test]
fn both_resolvers_refuse_every_symlink_and_open_regular_files() {
    use callrec_serve::store_file::{open_beneath, Resolve};
    let root = common::temp_dir("beneath");
    let outside = common::temp_dir("beneath-outside");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("a/b/f.wav"), b"inside").unwrap();
    std::fs::write(outside.join("f.wav"), b"outside").unwrap();
    std::os::unix::fs::symlink(outside.join("f.wav"), root.join("a/b/l.wav")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("a/c")).unwrap();
    std::os::unix::fs::symlink(root.join("a"), root.join("d")).unwrap();
    for how in [Resolve::Openat2, Resolve::PerComponent] {
        let fd = open_beneath(&root, "a/b/f.wav", how).expect("a regular file opens");
        let mut text = String::new();
        std::fs::File::from(fd).read_to_string(&mut text).unwrap();
        assert_eq!(text, "inside", "{how:?}");
        for refused in [
            "a/b/l.wav",
            "a/c/f.wav",
            "d/b/f.wav",
            "a/b",
            "a/../a/b/f.wav",
            "/etc/passwd",
            "a//b/f.wav",
        ] {
            assert!(
                open_beneath(&root, refused, how).is_err(),
                "{how:?} {refused}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&outside);
}
