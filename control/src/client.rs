//! The CLI's side of the local API: one request, one reply, over the daemon's unix socket.

use std::path::PathBuf;

use tokio::net::UnixStream;

use crate::api::{ApiError, ApiRequest, ApiResult};
use crate::wire;

pub const DEFAULT_HOST: &str = "unix:///run/shoal/shoal.sock";

/// Socket path from a `-H`/`SHOAL_HOST` value (`unix:///path` or a plain path).
pub fn socket_path(host: &str) -> Result<PathBuf, ApiError> {
    if let Some(p) = host.strip_prefix("unix://") {
        Ok(PathBuf::from(p))
    } else if host.starts_with('/') {
        Ok(PathBuf::from(host))
    } else {
        Err(ApiError::plain(format!(
            "unable to parse host `{host}`: only unix:///path is supported"
        )))
    }
}

pub struct Client {
    conn: wire::Conn<UnixStream>,
}

impl Client {
    pub async fn connect(host: &str) -> Result<Client, ApiError> {
        let path = socket_path(host)?;
        let stream = UnixStream::connect(&path).await.map_err(|e| {
            ApiError::plain(format!(
                "Cannot connect to the shoal daemon at unix://{}. Is the shoal daemon running? ({e})",
                path.display()
            ))
        })?;
        Ok(Client {
            conn: wire::framed(stream),
        })
    }

    pub async fn call(&mut self, req: ApiRequest) -> ApiResult {
        wire::call(&mut self.conn, &req)
            .await
            .map_err(|e| ApiError::plain(format!("error during connect: {e}")))?
    }
}
