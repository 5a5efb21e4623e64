//! The metrics endpoint: `GET /metrics` in the Prometheus text format, served with `hyper`
//! (HTTP/1.1) on the replica's network runtime until the replica stops. Every other path is
//! 404.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

use crate::shared::Shared;

/// Serves `GET /metrics` for the replica on `listener` until it stops. Runs on the
/// replica's network runtime.
pub(crate) async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    while shared.is_running() {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&shared, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            // One response per connection, then close (as the scrapers and the simple clients
            // that read to the end expect). A client that goes away mid-request is its own
            // business.
            let http = http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = http.await;
        });
    }
}

fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if request.method() == Method::GET && request.uri().path() == "/metrics" {
            (StatusCode::OK, CONTENT_TYPE, shared.metrics_text())
        } else {
            (StatusCode::NOT_FOUND, "text/plain", "only GET /metrics is served\n".to_string())
        };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let value = hyper::header::HeaderValue::from_static(content_type);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    response
}
