//! Framing for every Shoal connection: length-delimited JSON messages, one reply per request.
//!
//! A frame is a 4-byte big-endian length and that many bytes of JSON. The decoder never
//! reserves memory for an announced length: the buffer grows only as bytes arrive, so a
//! peer that announces a large frame and sends nothing holds no memory, and each
//! connection has its own limit (small until the peer is authenticated, see the server).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed};

/// Largest message accepted from an authenticated peer or the local socket. Raft
/// snapshots travel in chunks (openraft's 3 MiB default, about 12 MiB as JSON) and
/// AppendEntries batches stay far below it (see orchestrator's size test).
pub const MAX_FRAME: usize = 64 << 20;

/// Largest message accepted on the swarm port before the peer presented a certificate of
/// this swarm: the only such message is a Join (a token, a CSR and the host's
/// description, about 2 KiB; a test checks it stays far below this).
pub const MAX_UNAUTHENTICATED_FRAME: usize = 64 << 10;

const HEADER: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad message: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Length-prefixed frames up to `max` bytes; compatible with tokio-util's default
/// `LengthDelimitedCodec` (u32 big-endian length, not counting itself).
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max: usize,
}

impl FrameCodec {
    pub fn new(max: usize) -> Self {
        FrameCodec { max }
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

fn too_big(len: usize, max: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds the limit of {max} bytes"),
    )
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        if src.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max {
            return Err(too_big(len, self.max));
        }
        if src.len() < HEADER + len {
            // Deliberately no `reserve(len)`: memory follows the bytes actually received.
            return Ok(None);
        }
        src.advance(HEADER);
        Ok(Some(src.split_to(len)))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        if item.len() > self.max {
            return Err(too_big(item.len(), self.max));
        }
        dst.reserve(HEADER + item.len());
        dst.put_u32(item.len() as u32);
        dst.extend_from_slice(&item);
        Ok(())
    }
}

pub type Conn<S> = Framed<S, FrameCodec>;

/// A connection with the large limit: the local socket, or a peer we authenticated.
pub fn framed<S: AsyncRead + AsyncWrite>(io: S) -> Conn<S> {
    framed_with_limit(io, MAX_FRAME)
}

pub fn framed_with_limit<S: AsyncRead + AsyncWrite>(io: S, max: usize) -> Conn<S> {
    Framed::new(io, FrameCodec::new(max))
}

pub async fn send<S, T>(conn: &mut Conn<S>, msg: &T) -> Result<(), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = serde_json::to_vec(msg)?;
    conn.send(Bytes::from(bytes)).await?;
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

/// Bytes as base64 in JSON (serde's default for `Vec<u8>` is an array of numbers, three
/// to four times larger): `#[serde(with = "crate::wire::base64_bytes")]`.
pub mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame split anywhere arrives whole; the bytes on the wire are tokio-util's
    /// length-delimited format (older nodes speak it).
    #[test]
    fn frames_round_trip_in_pieces() {
        let mut codec = FrameCodec::new(1024);
        let mut wire = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut wire)
            .unwrap();
        assert_eq!(&wire[..], b"\0\0\0\x05hello");
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = codec.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(&got.unwrap()[..], b"hello");
            }
        }
    }

    /// An announced length over the limit is refused as soon as the prefix arrives, and
    /// one under it reserves nothing until its bytes come.
    #[test]
    fn announced_lengths_reserve_nothing() {
        let mut small = FrameCodec::new(MAX_UNAUTHENTICATED_FRAME);
        let mut buf = BytesMut::from(&((64u32 << 20) - 1).to_be_bytes()[..]);
        let err = small.decode(&mut buf).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");

        let mut big = FrameCodec::new(MAX_FRAME);
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(&((64u32 << 20) - 1).to_be_bytes());
        buf.extend_from_slice(b"abc");
        assert!(big.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() < 1024, "reserved {}", buf.capacity());
    }

    #[test]
    fn base64_bytes_are_compact() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Blob(#[serde(with = "base64_bytes")] Vec<u8>);
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let json = serde_json::to_vec(&Blob(data.clone())).unwrap();
        assert!(json.len() < data.len() * 4 / 3 + 8, "{}", json.len());
        let back: Blob = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.0, data);
    }
}
