//! OCCI conformance of the `text/occi` rendering (GFD.185 sections 3.4-3.7, GFD.229 sections 5
//! and 7) and of the protocol rules that go with it (GFD.223: versioning, status codes,
//! pagination, filtering, the method table): the text renderings' shared case list
//! (`tests/src/conformance/text.rs`) with the text/occi adapter, where the OCCI data travels in
//! the HTTP headers `Category`, `Link`, `X-OCCI-Attribute` and `X-OCCI-Location` and the body is
//! `OK`. Each table runs in order against a server of its own; a case stops at its first failing
//! exchange, and every failing case is reported at the end.

use ocni_tests::TestServer;
use ocni_tests::conformance::{Rendering::TextOcci, run, text};

#[tokio::test]
async fn text_occi_query_interface_and_rendering() {
    run(&TestServer::start().await, text::query_interface_and_rendering(TextOcci)).await;
}

#[tokio::test]
async fn text_occi_requests() {
    run(&TestServer::start().await, text::requests(TextOcci)).await;
}

#[tokio::test]
async fn text_occi_protocol() {
    run(&TestServer::start().await, text::protocol(TextOcci)).await;
}

#[tokio::test]
async fn text_occi_spec_examples() {
    run(&TestServer::start().await, text::spec_examples(TextOcci)).await;
}
