//! Framing for every Shoal connection: length-delimited JSON messages, one reply per request.

use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest message accepted (Raft snapshots are sent in chunks well below this).
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad message: {0}")]
    Decode(#[from] serde_json::Error),
}

pub type Conn<S> = Framed<S, LengthDelimitedCodec>;

pub fn framed<S: AsyncRead + AsyncWrite>(io: S) -> Conn<S> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    Framed::new(io, codec)
}

pub async fn send<S, T>(conn: &mut Conn<S>, msg: &T) -> Result<(), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = serde_json::to_vec(msg)?;
    conn.send(bytes::Bytes::from(bytes)).await?;
    Ok(())
}

pub async fn recv<S, T>(conn: &mut Conn<S>) -> Result<T, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: DeserializeOwned,
{
    match conn.next().await {
        Some(Ok(frame)) => Ok(serde_json::from_slice(&frame)?),
        Some(Err(e)) => Err(e.into()),
        None => Err(WireError::Closed),
    }
}

/// Send a request and wait for its reply.
pub async fn call<S, Req, Resp>(conn: &mut Conn<S>, req: &Req) -> Result<Resp, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Req: Serialize,
    Resp: DeserializeOwned,
{
    send(conn, req).await?;
    recv(conn).await
}
