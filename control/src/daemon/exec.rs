//! `shoal exec`: run a command inside a running task's namespaces on whichever node runs it.
//! After the request is accepted, both ends exchange `ExecFrame`s on the same connection:
//! the CLI's stdin one way, the command's stdout, stderr and exit code the other.

use std::process::Stdio;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Daemon;
use crate::wire::{self, Conn, WireError};

#[derive(Serialize, Deserialize, Debug)]
pub enum ExecFrame {
    Stdin(Vec<u8>),
    StdinEof,
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Error(String),
}

async fn pump<R: AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<ExecFrame>, stdout: bool) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let data = buf[..n].to_vec();
                let frame = if stdout {
                    ExecFrame::Stdout(data)
                } else {
                    ExecFrame::Stderr(data)
                };
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether and how big a pseudo-terminal the command gets (`exec -t`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
pub struct Tty {
    pub rows: u16,
    pub cols: u16,
}

/// On the node running the task: run `argv` inside it, streaming over `conn`.
pub(crate) async fn run_in_task<S>(
    daemon: &Daemon,
    conn: &mut Conn<S>,
    task_id: &str,
    argv: &[String],
    interactive: bool,
    tty: Option<Tty>,
) -> Result<(), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(size) = tty {
        return run_with_tty(daemon, conn, task_id, argv, size).await;
    }
    let started = shoal_executor::Executor::new(daemon.root.path("tasks"))
        .and_then(|e| e.exec_command(task_id, argv))
        .map_err(|e| e.to_string())
        .and_then(|std_cmd| {
            let mut cmd = tokio::process::Command::from(std_cmd);
            cmd.stdin(if interactive {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
            cmd.spawn().map_err(|e| format!("exec: {e}"))
        });
    let mut child = match started {
        Ok(c) => c,
        Err(e) => return wire::send(conn, &ExecFrame::Error(e)).await,
    };
    let (tx, mut rx) = mpsc::channel(64);
    if let Some(o) = child.stdout.take() {
        tokio::spawn(pump(o, tx.clone(), true));
    }
    if let Some(e) = child.stderr.take() {
        tokio::spawn(pump(e, tx.clone(), false));
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    let mut output_open = true;
    loop {
        tokio::select! {
            frame = rx.recv(), if output_open => match frame {
                Some(f) => wire::send(conn, &f).await?,
                None => output_open = false,
            },
            msg = wire::recv::<_, ExecFrame>(conn) => match msg {
                Ok(ExecFrame::Stdin(data)) => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Ok(ExecFrame::StdinEof) => stdin = None,
                Ok(_) => {}
                // The client went away: the command is killed (kill_on_drop).
                Err(e) => return Err(e),
            },
            status = child.wait(), if !output_open => {
                return wire::send(conn, &ExecFrame::Exit(exit_code(status))).await;
            }
        }
    }
}

/// `exec -t`: the command's stdin, stdout and stderr are a pseudo-terminal whose master side
/// is streamed; it becomes the command's controlling terminal.
async fn run_with_tty<S>(
    daemon: &Daemon,
    conn: &mut Conn<S>,
    task_id: &str,
    argv: &[String],
    size: Tty,
) -> Result<(), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    let winsize = nix::pty::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let started = nix::pty::openpty(Some(&winsize), None)
        .map_err(|e| format!("allocating a pseudo-terminal: {e}"))
        .and_then(|pty| {
            let mut std_cmd = shoal_executor::Executor::new(daemon.root.path("tasks"))
                .and_then(|e| e.exec_command(task_id, argv))
                .map_err(|e| e.to_string())?;
            let slave: OwnedFd = pty.slave;
            let stdio = |fd: &OwnedFd| fd.try_clone().map(Stdio::from).map_err(|e| e.to_string());
            std_cmd
                .stdin(stdio(&slave)?)
                .stdout(stdio(&slave)?)
                .stderr(stdio(&slave)?);
            // SAFETY: runs in the forked child before exec; setsid and ioctl are
            // async-signal-safe and touch only the child's own session and stdin.
            unsafe {
                std_cmd.pre_exec(|| {
                    nix::unistd::setsid().map_err(std::io::Error::from)?;
                    if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut cmd = tokio::process::Command::from(std_cmd);
            cmd.kill_on_drop(true);
            let child = cmd.spawn().map_err(|e| format!("exec: {e}"))?;
            drop(slave);
            Ok((child, pty.master))
        });
    let (mut child, master) = match started {
        Ok(x) => x,
        Err(e) => return wire::send(conn, &ExecFrame::Error(e)).await,
    };
    let _ = master.as_raw_fd();
    let reader = std::fs::File::from(master);
    let mut writer = match reader.try_clone() {
        Ok(w) => tokio::fs::File::from_std(w),
        Err(e) => return wire::send(conn, &ExecFrame::Error(e.to_string())).await,
    };
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(pump(tokio::fs::File::from_std(reader), tx, true));
    let mut output_open = true;
    loop {
        tokio::select! {
            frame = rx.recv(), if output_open => match frame {
                Some(f) => wire::send(conn, &f).await?,
                // The master reads EIO once the last slave is closed: the command is done.
                None => output_open = false,
            },
            msg = wire::recv::<_, ExecFrame>(conn) => match msg {
                Ok(ExecFrame::Stdin(data)) => {
                    let _ = writer.write_all(&data).await;
                    let _ = writer.flush().await;
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            },
            status = child.wait(), if !output_open => {
                return wire::send(conn, &ExecFrame::Exit(exit_code(status))).await;
            }
        }
    }
}

/// The exit status as a shell reports it: the code, or 128 + the signal that killed it.
fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => 126,
    }
}

/// Relay frames between the CLI's connection and the node's until the command exits.
pub(crate) async fn relay<A, B>(cli: &mut Conn<A>, node: &mut Conn<B>) -> Result<(), WireError>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            msg = wire::recv::<_, ExecFrame>(cli) => wire::send(node, &msg?).await?,
            msg = wire::recv::<_, ExecFrame>(node) => {
                let frame = msg?;
                let done = matches!(frame, ExecFrame::Exit(_) | ExecFrame::Error(_));
                wire::send(cli, &frame).await?;
                if done {
                    return Ok(());
                }
            }
        }
    }
}

/// Local daemon: find the task, then run here or relay to its node.
pub(crate) async fn serve<S>(
    daemon: &Arc<Daemon>,
    cli: &mut Conn<S>,
    reference: String,
    argv: Vec<String>,
    interactive: bool,
    tty: Option<Tty>,
) -> Result<(), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use crate::api::{ApiError, ApiReply, ApiRequest, ApiResult};
    let located = daemon
        .handle_api(ApiRequest::TaskLocation { reference })
        .await;
    let (task_id, node_id, addr) = match located {
        Ok(ApiReply::TaskLocation {
            task_id,
            node_id,
            listen_addr,
        }) => (task_id, node_id, listen_addr),
        Ok(other) => {
            let r: ApiResult = Err(ApiError::plain(format!("unexpected reply {other:?}")));
            return wire::send(cli, &r).await;
        }
        Err(e) => return wire::send(cli, &Err::<ApiReply, _>(e)).await,
    };
    let me = daemon.membership().map(|m| m.node_id).unwrap_or_default();
    if node_id == me {
        wire::send(cli, &Ok::<ApiReply, ApiError>(ApiReply::Done)).await?;
        return run_in_task(daemon, cli, &task_id, &argv, interactive, tty).await;
    }
    let Some(tls) = daemon.tls.get() else {
        return wire::send(
            cli,
            &Err::<ApiReply, _>(ApiError::daemon("no swarm certificate")),
        )
        .await;
    };
    let mut node = match crate::peer::connect_named(&addr, &node_id, tls.client).await {
        Ok(c) => c,
        Err(e) => {
            return wire::send(
                cli,
                &Err::<ApiReply, _>(ApiError::daemon(format!(
                    "connecting to the task's node {addr}: {e}"
                ))),
            )
            .await
        }
    };
    let req = crate::peer::PeerRequest::Exec {
        task_id,
        argv,
        interactive,
        tty,
    };
    wire::send(&mut node, &req).await?;
    wire::send(cli, &Ok::<ApiReply, ApiError>(ApiReply::Done)).await?;
    relay(cli, &mut node).await
}
