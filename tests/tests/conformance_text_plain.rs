//! OCCI conformance of the `text/plain` rendering (GFD.185 sections 3.4-3.7, GFD.229 sections
//! 5-6, 8) and of the protocol rules that go with it (GFD.223: versioning, status codes,
//! pagination, filtering, the method table): the text renderings' shared case list
//! (`tests/src/conformance/text.rs`) with the text/plain adapter, where the OCCI fields are
//! `Name: value` lines of the body. Each table runs in order against a server of its own; a case
//! stops at its first failing exchange, and every failing case is reported at the end.

use ocni_tests::TestServer;
use ocni_tests::conformance::{Rendering::TextPlain, run, text};

#[tokio::test]
async fn text_plain_query_interface_and_rendering() {
    run(&TestServer::start().await, text::query_interface_and_rendering(TextPlain)).await;
}

#[tokio::test]
async fn text_plain_requests() {
    run(&TestServer::start().await, text::requests(TextPlain)).await;
}

#[tokio::test]
async fn text_plain_protocol() {
    run(&TestServer::start().await, text::protocol(TextPlain)).await;
}

#[tokio::test]
async fn text_plain_spec_examples() {
    run(&TestServer::start().await, text::spec_examples(TextPlain)).await;
}
