//! Waiting: for the target to exit, the deadline, a stop signal or SIGUSR1,
//! and for a process to watch.

use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::*;
use crate::target::{self, Process, TargetSpec};

pub(super) enum Wait {
    Exited,
    Deadline,
    Interrupted,
}

/// Why `wait` returned before its timeout.
pub(super) enum Wake {
    End(Wait),
    /// SIGUSR1: an operator asks for deep mode.
    Deep,
}

/// SIGINT (Ctrl-C) and SIGTERM (how a container runtime stops a sidecar),
/// listened to for the whole run so that none arriving between polls is lost.
pub(super) struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    deep: Signal,
}

impl StopSignals {
    pub(super) fn install() -> Result<Self, RunError> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(RunError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(RunError::Signals)?,
            deep: signal(SignalKind::user_defined1()).map_err(RunError::Signals)?,
        })
    }
}

/// Waits up to `timeout` for the target to exit, the deadline, or a stop signal.
pub(super) async fn wait(
    signals: &mut StopSignals,
    process: Option<&Process>,
    timeout: Duration,
    deadline: Option<Instant>,
) -> Option<Wake> {
    let until = Instant::now() + timeout;
    loop {
        if process.is_some_and(|p| !p.is_alive()) {
            return Some(Wake::End(Wait::Exited));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Some(Wake::End(Wait::Deadline));
        }
        if now >= until {
            return None;
        }
        let step = LIVENESS_POLL.min(until - now);
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            _ = signals.interrupt.recv() => return Some(Wake::End(Wait::Interrupted)),
            _ = signals.terminate.recv() => return Some(Wake::End(Wait::Interrupted)),
            _ = signals.deep.recv() => return Some(Wake::Deep),
        }
    }
}

/// Finds the process to watch; in `Exe` mode waits for one to start.
pub(super) async fn find_process(
    signals: &mut StopSignals,
    spec: &TargetSpec,
    skip: &[Process],
    deadline: Option<Instant>,
) -> Result<Result<Process, Wait>, RunError> {
    match spec {
        TargetSpec::Pid(pid) => Ok(Ok(Process::from_pid(*pid)?)),
        TargetSpec::Exe(path) => {
            let mut announced = false;
            loop {
                let running = target::processes_running(path)?;
                if let Some(p) = running.into_iter().find(|p| !skip.contains(p)) {
                    return Ok(Ok(p));
                }
                if !announced {
                    println!("gort: waiting for a process running {}", path.display());
                    announced = true;
                }
                match wait(signals, None, Duration::from_millis(200), deadline).await {
                    Some(Wake::End(w)) => return Ok(Err(w)),
                    Some(Wake::Deep) => println!("gort: SIGUSR1 ignored: no process attached yet"),
                    None => {}
                }
            }
        }
    }
}
