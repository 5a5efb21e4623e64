//! The first frame of every connection: the hello that names the cluster and the replica,
//! written by both ends and read before anything else, with a bound on its size because the
//! peer is not authenticated yet. A child of `tcp.rs`, apart so that each file stays short.

use super::*;

pub(super) async fn write_hello(shared: &Shared, conn: &mut Conn) -> Result<(), ConnError> {
    let hello = Hello { cluster: shared.config.cluster.clone(), id: shared.config.id };
    conn.write_all(&frame_bytes(FrameKind::Hello, &hello.encode())).await?;
    conn.flush().await?;
    Ok(())
}

/// Reads the first frame, which must be a hello no larger than a hello can be. Returns it
/// with any bytes read past it.
pub(super) async fn read_hello(conn: &mut Conn) -> Result<(Hello, BytesMut), ConnError> {
    let mut buf = BytesMut::with_capacity(FRAME_HEADER_BYTES + HELLO_PAYLOAD_BYTES_MAX);
    loop {
        if buf.len() >= 4 {
            // Refuse a large first frame before buffering it: the peer is not authenticated.
            let length = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
            if length > HELLO_PAYLOAD_BYTES_MAX {
                return Err(ConnError::HelloTooLarge(length));
            }
        }
        if let Some(frame) = decode_frame(&mut buf)? {
            if frame.kind != FrameKind::Hello {
                return Err(ConnError::NotHello(frame.kind));
            }
            return Ok((Hello::decode(&frame.payload)?, buf));
        }
        if conn.read_buf(&mut buf).await? == 0 {
            decode_eof(&buf)?;
            return Err(ConnError::ClosedBeforeHello);
        }
    }
}
