//! Counts made by bpftrace, a tool not ours: the independent figure a recording is held
//! against (a count at the same kernel point the recorder uses, taken by another program).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `bpftrace -e PROGRAM` whose program counts into `@n`.
pub struct Counter {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Counter {
    /// Starts bpftrace and waits until its probes are attached.
    pub fn start(program: &str) -> Result<Counter, String> {
        let mut child = Command::new("bpftrace")
            .args(["-e", program])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("bpftrace: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.starts_with("Attaching") {
                return Ok(Counter { child, stdout });
            }
            if n == 0 || Instant::now() > deadline {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let _ = child.kill();
                return Err(format!("bpftrace did not attach: {err}"));
            }
        }
    }

    /// Stops bpftrace (SIGINT, as a user would) and returns `@n` (0 when nothing was counted).
    pub fn stop(mut self) -> Result<u64, String> {
        // SAFETY: kill with a valid pid and signal.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut rest = String::new();
        self.stdout
            .read_to_string(&mut rest)
            .map_err(|e| e.to_string())?;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("bpftrace exited with {status}: {rest}"));
        }
        Ok(rest
            .lines()
            .find_map(|l| l.strip_prefix("@n: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }
}
