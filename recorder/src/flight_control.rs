//! The flight recorder's triggers on the drain side: `SIGUSR1`, `tcptape-record trigger`
//! through a socket under `/run`, and the `--trigger` conditions; a hold-off so that a storm of
//! triggers saves one window. The writer does the saving
//! ([`crate::segment_writer::SegmentWriter::trigger`]).

use crate::trigger_conditions::Condition;
use crate::write_pipeline::WriterHandle;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tcptape_common::metadata::{host, Trigger};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Where running recorders listen for `tcptape-record trigger`: one socket per recorder,
/// `PID.sock`, in a directory only root can enter.
pub const SOCKET_DIR: &str = "/run/tcptape-record";

/// The triggers of a live recording (the conditions' [`crate::trigger_conditions::Watch`] is
/// fed by the drain loop).
pub struct FlightControl {
    hold_off: Duration,
    last: Option<Instant>,
    usr1: tokio::signal::unix::Signal,
    listener: Option<(UnixListener, PathBuf)>,
    /// Why the socket could not be made, said once at the start.
    pub socket_warning: Option<String>,
}

impl FlightControl {
    /// Listens for `SIGUSR1` and on the socket; must run inside the tokio runtime.
    pub fn new(hold_off: Duration) -> std::io::Result<FlightControl> {
        let usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let (listener, socket_warning) = match listen(Path::new(SOCKET_DIR)) {
            Ok(l) => (Some(l), None),
            Err(e) => (
                None,
                Some(format!(
                    "`tcptape-record trigger` cannot reach this recorder ({e}); SIGUSR1 still \
                     triggers it"
                )),
            ),
        };
        Ok(FlightControl {
            hold_off,
            last: None,
            usr1,
            listener,
            socket_warning,
        })
    }

    /// Waits for the next `SIGUSR1` or `trigger` command; returns its reason and, for a
    /// command, the connection to answer on.
    pub async fn next(&mut self) -> (String, Option<UnixStream>) {
        let accept = async {
            match &self.listener {
                Some((l, _)) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.usr1.recv() => ("SIGUSR1".to_string(), None),
            Ok((stream, _)) = accept => {
                let mut stream = stream;
                match read_request(&mut stream).await {
                    Ok(reason) => (reason, Some(stream)),
                    Err(e) => {
                        let _ = stream.write_all(format!("error: {e}\n").as_bytes()).await;
                        (String::new(), None)
                    }
                }
            }
        }
    }

    /// True within the hold-off of the last trigger.
    pub fn holding_off(&self) -> bool {
        self.last.is_some_and(|l| l.elapsed() < self.hold_off)
    }

    /// Fires a trigger unless one fired within the hold-off; returns what to tell the user.
    pub fn fire(
        &mut self,
        writer: &WriterHandle,
        reason: &str,
        condition: Option<&Condition>,
        value: Option<f64>,
    ) -> anyhow::Result<String> {
        if let Some(last) = self.last.filter(|l| l.elapsed() < self.hold_off) {
            return Ok(format!(
                "trigger '{reason}' ignored: the last one fired {:.1} s ago (hold-off {})",
                last.elapsed().as_secs_f64(),
                humantime::format_duration(self.hold_off)
            ));
        }
        let trigger = Trigger {
            at_ns: host::monotonic_ns().unwrap_or(0),
            reason: reason.to_string(),
            condition: condition.map(|c| c.text.clone()),
            value,
            after_ns: 0,
        };
        let reply = writer
            .trigger(trigger)
            .map_err(|_| anyhow::anyhow!("the writer stopped"))?;
        Ok(match reply {
            Ok(Some(dir)) => {
                self.last = Some(Instant::now());
                let value = match (condition, value) {
                    (Some(_), Some(v)) => format!(" (value {v:.0})"),
                    _ => String::new(),
                };
                format!(
                    "trigger '{reason}'{value}: saving the window to {}",
                    dir.display()
                )
            }
            Ok(None) => format!("trigger '{reason}' ignored: a window is still being saved"),
            Err(e) => format!("trigger '{reason}' failed: {e}"),
        })
    }
}

impl Drop for FlightControl {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The socket of this recorder: `DIR/PID.sock`, the directory 0700 and the socket 0600, so only
/// root (or the recorder's own user) can trigger it.
fn listen(dir: &Path) -> std::io::Result<(UnixListener, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)?;
    let path = dir.join(format!("{}.sock", std::process::id()));
    // A socket left by a killed recorder of the same pid.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, path))
}

/// Reads a `trigger` request (one line: the reason) from a permitted peer.
async fn read_request(stream: &mut UnixStream) -> Result<String, String> {
    let cred = stream.peer_cred().map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid() != 0 && cred.uid() != me {
        return Err(format!("user {} may not trigger this recorder", cred.uid()));
    }
    let mut line = String::new();
    let mut reader = BufReader::new(&mut *stream);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .map_err(|_| "no request".to_string())?
        .map_err(|e| e.to_string())?;
    let reason = line.trim();
    Ok(if reason.is_empty() {
        "trigger command".to_string()
    } else {
        reason.chars().take(200).collect()
    })
}

/// Answers a `trigger` command.
pub async fn answer(stream: Option<UnixStream>, text: &str) {
    if let Some(mut s) = stream {
        let _ = s.write_all(format!("{text}\n").as_bytes()).await;
    }
}

/// True when process `pid` exists (signal 0 checks without sending anything).
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `tcptape-record trigger`: asks every running recorder (or the one of `pid`) to save its
/// window, and prints their answers. Fails when none answers.
pub fn send(reason: &str, pid: Option<u32>) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let dir = Path::new(SOCKET_DIR);
    let sockets: Vec<PathBuf> = match pid {
        Some(p) => vec![dir.join(format!("{p}.sock"))],
        None => std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut answered = 0;
    for path in &sockets {
        let who = path.file_stem().unwrap_or_default().to_string_lossy();
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                writeln!(s, "{reason}")?;
                let mut reply = String::new();
                std::io::BufReader::new(&s).read_line(&mut reply)?;
                println!("recorder {who}: {}", reply.trim());
                answered += 1;
            }
            // A recorder that was killed (SIGKILL, a crash) could not remove its socket: nothing
            // listens, and its pid is gone. The socket is removed rather than reported each time.
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && who.parse::<i32>().is_ok_and(|p| !process_alive(p)) =>
            {
                let _ = std::fs::remove_file(path);
            }
            Err(e) => eprintln!("recorder {who}: cannot connect ({e})"),
        }
    }
    if answered == 0 {
        anyhow::bail!(
            "no running flight recorder answered (sockets in {SOCKET_DIR}; a recorder listens \
             when started with --keep)"
        );
    }
    Ok(())
}
