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
    let authority = server
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--server {server:?}: only http://host:port URLs are supported"))?
        .trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        anyhow::bail!("--server {server:?}: give the server's root, e.g. http://127.0.0.1:8090");
    }
    let addr = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
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
