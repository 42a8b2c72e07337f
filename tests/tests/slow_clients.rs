//! Slow and oversized clients: a body dribbled too slowly gets 408, headers dribbled too slowly
//! get the connection closed, oversized headers get 431, and none of it stops the server from
//! answering others meanwhile.

use std::time::{Duration, Instant};

use ocni_tests::{TestServer, expect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server_with_short_timeouts() -> TestServer {
    TestServer::start_configured(|c| {
        c.header_read_timeout = Duration::from_millis(500);
        c.body_read_timeout = Duration::from_millis(500);
    })
    .await
}

fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Reads what the server sends until it closes the connection or `limit` passes.
async fn read_all(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_dribbled_body_gets_408_and_others_are_served() {
    let server = server_with_short_timeouts().await;
    let mut slow = TcpStream::connect(addr(&server)).await.unwrap();
    let head = format!(
        "POST /compute/ HTTP/1.1\r\nHost: {}\r\nContent-Type: application/occi+json\r\nContent-Length: 100\r\n\r\n{{\"kind\"",
        addr(&server)
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // Meanwhile the server answers others.
    expect(&server.get("/-/").await, 200);
    let answer = read_all(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "expected 408, got {answer:?}");
    assert!(answer.contains("did not arrive"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "cut off after {:?}", started.elapsed());
    // Nothing was created. (A fresh connection: the server closes keep-alive connections that stay
    // idle past the header timeout, which is short here.)
    let listed: serde_json::Value = reqwest::Client::new()
        .get(server.url("/compute/"))
        .header("Accept", "application/occi+json; dialect=pyocni")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["X-OCCI-Location"], serde_json::json!([]));
}

#[tokio::test]
async fn dribbled_headers_get_the_connection_closed() {
    let server = server_with_short_timeouts().await;
    let mut slow = TcpStream::connect(addr(&server)).await.unwrap();
    slow.write_all(b"GET /-/ HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let answer = read_all(&mut slow, Duration::from_secs(5)).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "the connection was held for {waited:?}");
    assert!(!answer.contains("200 OK"), "an incomplete request was answered: {answer:?}");
    expect(&server.get("/-/").await, 200);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let server = TestServer::start().await;
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    let big = "a".repeat(1 << 20);
    let request = format!("GET /-/ HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may stop reading (and answer) before the whole header is written.
    let _ = client.write_all(request.as_bytes()).await;
    let answer = read_all(&mut client, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "expected 431, got {:?}", &answer[..answer.len().min(200)]);
    expect(&server.get("/-/").await, 200);
}
