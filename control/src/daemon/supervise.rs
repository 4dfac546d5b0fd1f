//! The daemon's long-running loops, watched. A panic is a bug (input never causes one by
//! design), but when one happens the loop it killed must not leave a daemon that answers
//! its API while nothing schedules, heartbeats or programs the data plane. tokio keeps a
//! panic inside its task: without this, the loop just stops, silently.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

/// What a panic of a loop leads to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OnPanic {
    /// Start the loop again a second later: for loops that hold no state of their own
    /// between rounds (the leader's orchestrators read the store each round).
    Restart,
    /// Exit the process (status 70), so that the service manager starts `shoald` again from
    /// its state on disk: for loops whose state a restart in place could leave half made.
    /// Tasks and established flows outlive `shoald` by design.
    Exit,
}

/// Spawn `make()` and watch it: a normal return ends it, a panic is logged and handled
/// as `on_panic` says.
pub(crate) fn spawn<F, Fut>(name: &'static str, on_panic: OnPanic, make: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    watch(name, on_panic, Duration::from_secs(1), make)
}

fn watch<F, Fut>(
    name: &'static str,
    on_panic: OnPanic,
    pause: Duration,
    mut make: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Err(panic) = AssertUnwindSafe(make()).catch_unwind().await else {
                return;
            };
            let what = message(&*panic);
            match on_panic {
                OnPanic::Restart => {
                    tracing::error!(task = name, panic = %what, "a daemon loop panicked (a bug: please report it); starting it again in 1 s");
                    tokio::time::sleep(pause).await;
                }
                OnPanic::Exit => {
                    tracing::error!(task = name, panic = %what, "a daemon loop panicked (a bug: please report it); exiting so that shoald is started again (tasks keep running)");
                    std::process::exit(70);
                }
            }
        }
    })
}

fn message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A loop that panics is started again; one that returns is done.
    #[tokio::test]
    async fn a_panicking_loop_is_started_again() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let h = watch(
            "test",
            OnPanic::Restart,
            Duration::from_millis(1),
            move || {
                let r = r.clone();
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("boom");
                    }
                }
            },
        );
        h.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn panic_messages_are_read() {
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(message(&*p), "static");
        let n = 7;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(message(&*p), "formatted 7");
    }
}
