//! The smallest HTTP/1 client the admin subcommands need: one request to the admin API of an
//! `http://` server, the answer's status and body back.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Sends `method path` (with a JSON body if any) to `server` (`http://host:port`) with the admin
/// token, and returns (status, body).
pub async fn request(
    server: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, String)> {
    let uri: hyper::Uri = server.parse().with_context(|| format!("--server {server:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("--server {server:?}: only http://host:port URLs are supported");
    }
    let authority = uri.authority().ok_or_else(|| anyhow::anyhow!("--server {server:?} names no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || authority.as_str().contains('@') {
        anyhow::bail!("--server {server:?}: give the server's root, e.g. http://127.0.0.1:8090");
    }
    let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
    let authority = authority.as_str();
    let stream = tokio::net::TcpStream::connect(&addr).await.with_context(|| format!("connecting to {server}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    let bytes = match body {
        Some(v) => {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(v)?)
        }
        None => Bytes::new(),
    };
    let resp = sender.send_request(req.body(Full::new(bytes))?).await.with_context(|| format!("{method} {path}"))?;
    let status = resp.status().as_u16();
    let text = String::from_utf8_lossy(&resp.into_body().collect().await?.to_bytes()).into_owned();
    Ok((status, text))
}
