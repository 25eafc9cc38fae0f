//! The real `tcptape-record` binary, run as a child process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use crate::recording::{load, Loaded};

/// The recorder binary: `TCPTAPE_RECORD_BIN`, else the one beside the test executable
/// ([`crate::binaries::workspace_binary`]).
pub fn binary() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("TCPTAPE_RECORD_BIN") {
        Some(p) => Ok(PathBuf::from(p)),
        None => crate::binaries::workspace_binary("tcptape-recorder", "tcptape-record"),
    })
    .clone()
}

/// A running recorder.
pub struct RecorderProcess {
    child: Option<Child>,
    stderr: mpsc::Receiver<String>,
    /// Everything it printed on stderr so far.
    pub log: Vec<String>,
}

impl RecorderProcess {
    /// Starts `tcptape-record ARGS` and waits until it says it is recording.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Result<RecorderProcess, String> {
        Self::start_in(None, args, env)
    }

    /// [`RecorderProcess::start`], inside network namespace `ns` when given (`ip netns exec`,
    /// which execs the recorder, so signals reach it directly).
    pub fn start_in(
        ns: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<RecorderProcess, String> {
        let bin = binary()?;
        let mut cmd = match ns {
            None => Command::new(&bin),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
        };
        cmd.args(args);
        // Every flow, as these tests count what they sent: the default budget would keep fewer
        // flows of a fast transfer. Tests of the budget give theirs.
        if !args.contains(&"--budget") {
            cmd.args(["--budget", "off"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("tcptape-record: {e}"))?;
        let err = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = RecorderProcess {
            child: Some(child),
            stderr: rx,
            log: Vec::new(),
        };
        loop {
            match p.stderr.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let ready = line.starts_with("recording ");
                    p.log.push(line);
                    if ready {
                        return Ok(p);
                    }
                }
                Err(_) => {
                    let status = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                    return Err(format!(
                        "the recorder did not start ({status:?}): {}",
                        p.log.join("\n")
                    ));
                }
            }
        }
    }

    /// The recorder's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal and waits for the exit code; returns it with the full stderr.
    pub fn stop(mut self, signal: libc::c_int) -> Result<(i32, String), String> {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let status = child.wait().map_err(|e| e.to_string())?;
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.log.push(line);
        }
        Ok((status.code().unwrap_or(-1), self.log.join("\n")))
    }

    /// Waits for the recorder to exit by itself (e.g. `--duration`).
    pub fn wait(mut self, timeout: Duration) -> Result<(i32, String), String> {
        let mut child = self.child.take().expect("running");
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return Ok((status.code().unwrap_or(-1), self.log.join("\n")));
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                return Err("the recorder did not stop in time".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Records with `args` while `during` runs (it gets the running recorder), then stops the
/// recorder with SIGINT after a moment for the last events to arrive, asserts that it exited 0,
/// and returns its log.
pub fn record_during(args: &[&str], during: impl FnOnce(&RecorderProcess)) -> String {
    record_during_in(None, args, during)
}

/// [`record_during`], with the recorder inside network namespace `ns` when given.
pub fn record_during_in(
    ns: Option<&str>,
    args: &[&str],
    during: impl FnOnce(&RecorderProcess),
) -> String {
    let rec = RecorderProcess::start_in(ns, args, &[]).expect("recorder starts");
    during(&rec);
    std::thread::sleep(Duration::from_millis(200));
    let (code, log) = rec.stop(libc::SIGINT).expect("recorder stops");
    assert_eq!(code, 0, "{log}");
    log
}

/// [`record_during_in`] into a temporary file (`args` without `-o`), loaded once the recorder
/// has stopped.
pub fn record_to_temp(ns: Option<&str>, args: &[&str], during: impl FnOnce()) -> Loaded {
    record_to_temp_with_env(ns, args, &[], during)
}

/// [`record_to_temp`] with extra environment for the recorder (`TCPTAPE_DISABLE_MECHANISMS`, to
/// record through another flavor of the hooks).
pub fn record_to_temp_with_env(
    ns: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
    during: impl FnOnce(),
) -> Loaded {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("rec.parquet");
    let mut all = vec!["-o", out.to_str().expect("a UTF-8 temporary path")];
    all.extend_from_slice(args);
    let rec = RecorderProcess::start_in(ns, &all, env).expect("recorder starts");
    during();
    std::thread::sleep(Duration::from_millis(200));
    let (code, log) = rec.stop(libc::SIGINT).expect("recorder stops");
    assert_eq!(code, 0, "{log}");
    load(&out).expect("recording")
}

impl Drop for RecorderProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
