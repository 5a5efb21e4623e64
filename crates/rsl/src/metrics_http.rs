//! The metrics endpoint: `GET /metrics` in the Prometheus text format, served by a tiny
//! HTTP responder on the transport's tokio runtime until the replica stops.

use std::sync::Arc;

use crate::shared::Shared;

/// Serves `GET /metrics` for `node` on `addr` until the node stops. Runs on the caller's
/// tokio runtime.
pub(crate) async fn serve(node: Arc<Shared>, listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while node.is_running() {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let node = node.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics") {
                ("200 OK", node.metrics_text())
            } else {
                ("404 Not Found", "only GET /metrics is served\n".to_string())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        });
    }
}
