//! `tcptape diff` as a CI gate, on real captures between two network namespaces (root only;
//! skipped with a printed reason elsewhere). The scenario is a client sending messages at a
//! steady pace to a server that sleeps a known time before reading each one, so the stage that
//! ends at `rx_app` lasts about that sleep: the test sets the shift it expects the gate to find.
//!
//! Twenty repetitions of a scenario are twenty connections (one port each) recorded together;
//! `diff --port P` compares one repetition of one recording with one of another. At 10, 50 and
//! 1000 messages per connection:
//! - the same scenario recorded twice passes (exit 0) in at least 19 of 20 repetitions;
//! - a sleep 30% longer fails (exit 1) and names the stage, in at least 19 of 20;
//! - with 3 messages no test can decide whether a 30% longer sleep is real: exit 3;
//! - and a `--fail-on` threshold on the stage fails (exit 1) from 10 messages, undecided at 3.
//!
//! And with several runs a side (`--base R1 R2 R3 --candidate ...`), the verdict comes from the
//! runs: the same scenario passes, the longer sleep fails.

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tcptape_e2e::netns::{spawn_in, Pair};
use tcptape_e2e::recorder::RecorderProcess;
use tcptape_e2e::{analyzer, should_run, traffic};

/// The server's sleep before each read in the base scenario.
const SLEEP: Duration = Duration::from_micros(2_000);
/// The candidate's: 30% longer.
const SLOWER: Duration = Duration::from_micros(2_600);
/// Repetitions of each size.
const REPS: u16 = 20;
/// Requests per connection, and the first port of each size's repetitions.
const SIZES: [(usize, u16); 4] = [(3, 46_000), (10, 46_100), (50, 46_200), (1000, 46_300)];
/// What the gate is told: a stage fails when its median rose by 20% (the shift is 30%).
const GATE: [&str; 2] = ["--fail-effect", "20%"];

/// Sends `rounds` messages on `port` between the namespaces, one every `sleep` + 1 ms; the
/// server, once a message is there, sleeps `sleep` before reading it. Each message thus waits
/// `sleep` in the receive queue: the stage that ends at `rx_app` lasts that long, and it is the
/// only stage there (nothing is sent back but ACKs).
fn exchange(
    pair: &Pair,
    port: u16,
    rounds: usize,
    sleep: Duration,
) -> Vec<std::thread::JoinHandle<Result<(), String>>> {
    let listener = traffic::listen_in(&pair.b, &pair.addr_b, port).expect("listen");
    let server = std::thread::spawn(move || -> Result<(), String> {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut msg = [0u8; 100];
        for _ in 0..rounds {
            // Waits until the message is there without copying it (a peek would be a read).
            let mut fd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&s),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            if unsafe { libc::poll(&mut fd, 1, 10_000) } != 1 {
                return Err("no message within 10 s".into());
            }
            std::thread::sleep(sleep);
            s.read_exact(&mut msg).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    let addr_b = pair.addr_b.clone();
    let client = spawn_in(&pair.a, move || {
        let mut s = traffic::connect(&addr_b, port)?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        for _ in 0..rounds {
            s.write_all(&[0x5a; 100]).map_err(|e| e.to_string())?;
            std::thread::sleep(sleep + Duration::from_millis(1));
        }
        Ok(())
    });
    vec![server, client]
}

/// Records each of `runs` (network, size, first port, repetitions) into its own file at once
/// (one recorder per network), every server sleeping `sleep`.
fn record(runs: &[(&Pair, &Path, usize, u16, u16)], sleep: Duration) {
    let recorders: Vec<RecorderProcess> = runs
        .iter()
        .map(|(pair, out, ..)| {
            let addr = format!("{}/32", pair.addr_b);
            RecorderProcess::start(&["-o", out.to_str().unwrap(), "--addr", &addr], &[])
                .expect("recorder starts")
        })
        .collect();
    let mut threads = Vec::new();
    for &(pair, _, rounds, first, reps) in runs {
        for i in 0..reps {
            threads.extend(exchange(pair, first + i, rounds, sleep));
        }
    }
    for t in threads {
        t.join().expect("no panic").expect("exchange");
    }
    std::thread::sleep(Duration::from_millis(300));
    for rec in recorders {
        let (code, log) = rec.stop(libc::SIGTERM).expect("recorder stops");
        assert_eq!(code, 0, "recorder exit code; stderr:\n{log}");
    }
}

/// The exit code and JSON of one `diff`.
type Outcome = (i32, Value);

/// `tcptape diff --format json ARGS --port PORT`: exit code and JSON.
fn diff(args: &[&str], port: Option<u16>) -> Outcome {
    let mut a = vec!["diff", "-q", "--format", "json"];
    a.extend(args);
    a.extend(GATE);
    let p = port.map(|p| p.to_string());
    if let Some(p) = &p {
        a.extend(["--port", p]);
    }
    let out = analyzer::run(&a);
    let code = out.status.code().expect("exit code");
    assert!(
        code != 2 && code < 4,
        "tcptape {a:?}: exit {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).expect("JSON"))
}

/// The row of the stage that ends at `rx_app` (where the server's sleep shows).
fn app_row(d: &Value) -> Option<&Value> {
    d["stages"]
        .as_array()?
        .iter()
        .filter(|r| r["to"] == "rx_app")
        .max_by_key(|r| r["base"]["count"].as_u64().or(r["cand"]["count"].as_u64()))
}

fn workdir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("temporary directory");
    let p = t.path().to_path_buf();
    (t, p)
}

#[test]
fn the_gate_passes_the_same_scenario_fails_a_longer_sleep_and_says_when_it_cannot_tell() {
    if !should_run(
        "the_gate_passes_the_same_scenario_fails_a_longer_sleep_and_says_when_it_cannot_tell",
    ) {
        return;
    }
    // One network per size, so that each size's recordings hold its traffic only.
    let pairs: Vec<Pair> = SIZES
        .iter()
        .map(|_| Pair::new().expect("network namespaces"))
        .collect();
    let (_tmp, dir) = workdir();
    let file = |what: &str, rounds: usize| dir.join(format!("{what}-{rounds}.parquet"));
    for (what, sleep) in [("base", SLEEP), ("again", SLEEP), ("slower", SLOWER)] {
        let files: Vec<PathBuf> = SIZES.iter().map(|&(n, _)| file(what, n)).collect();
        let runs: Vec<(&Pair, &Path, usize, u16, u16)> = SIZES
            .iter()
            .zip(&pairs)
            .zip(&files)
            .map(|((&(n, port), pair), f)| (pair, f.as_path(), n, port, REPS))
            .collect();
        record(&runs, sleep);
    }
    for &(rounds, first) in &SIZES {
        let (b, a, s) = (
            file("base", rounds),
            file("again", rounds),
            file("slower", rounds),
        );
        let (b, a, s) = (
            b.to_str().unwrap(),
            a.to_str().unwrap(),
            s.to_str().unwrap(),
        );
        // Two repetitions at a time (the machine's two CPUs).
        let results: Vec<(u16, Outcome, Outcome)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2u16)
                .map(|half| {
                    scope.spawn(move || {
                        (0..REPS)
                            .filter(|i| i % 2 == half)
                            .map(|i| {
                                let port = first + i;
                                (port, diff(&[b, a], Some(port)), diff(&[b, s], Some(port)))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("no panic"))
                .collect()
        });
        let mut same_pass = 0;
        let mut shift_fail = 0;
        let mut shift_undecided = 0;
        for (port, (code, d), (shift_code, sd)) in results {
            let row = app_row(&d).expect("a stage ends at rx_app");
            eprintln!(
                "{rounds} messages, port {port}, same scenario: exit {code}, {}: {} ({})",
                row["from"], row["verdict"], row["changes"]["p50_ns"]
            );
            same_pass += (code == 0) as u32;
            let row = app_row(&sd).expect("a stage ends at rx_app");
            eprintln!(
                "{rounds} messages, port {port}, 30% longer sleep: exit {shift_code}, {}: {} ({}), method {}",
                row["from"], row["verdict"], row["changes"]["p50_ns"], row["method"]
            );
            let named = sd["regressions"].to_string().contains("rx_app slower");
            shift_fail += (shift_code == 1 && named) as u32;
            let undecided = sd["undecided"].to_string().contains("rx_app");
            shift_undecided += (shift_code == 3 && undecided) as u32;
        }
        eprintln!(
            "{rounds} messages: same scenario passed {same_pass}/{REPS}, longer sleep failed \
             {shift_fail}/{REPS}, undecided {shift_undecided}/{REPS}"
        );
        assert!(
            same_pass >= 19,
            "{rounds} messages: the same scenario passed {same_pass}/{REPS}"
        );
        // A threshold on the stage is held to the same rule: undecided when it cannot tell.
        let threshold = ["--fail-on", "rx_app:p50>+20%"];
        let (code, d) = diff(&[b, s, threshold[0], threshold[1]], Some(first));
        eprintln!(
            "{rounds} messages, --fail-on: exit {code}: {}",
            d["thresholds"]
        );
        assert_eq!(code, if rounds < 10 { 3 } else { 1 }, "{}", d["thresholds"]);
        if rounds < 10 {
            assert!(
                shift_undecided >= 19,
                "{rounds} messages: a 30% longer sleep was undecided in {shift_undecided}/{REPS}"
            );
        } else {
            assert!(
                shift_fail >= 19,
                "{rounds} messages: a 30% longer sleep failed {shift_fail}/{REPS}"
            );
        }
    }
}

/// Runs a side in `with_several_runs_a_side_the_runs_decide`.
const RUNS: u16 = 5;

#[test]
fn with_several_runs_a_side_the_runs_decide() {
    if !should_run("with_several_runs_a_side_the_runs_decide") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    let (_tmp, dir) = workdir();
    // Five runs a side: with three, one slow run of the base gave its four degrees of freedom
    // a p-value just above the Bonferroni level of every row the diff tests (0.0017 once in CI).
    let mut runs: [Vec<String>; 3] = Default::default();
    for (k, sleep) in [(0, SLEEP), (1, SLEEP), (2, SLOWER)] {
        for r in 0..RUNS {
            let out = dir.join(format!("set{k}-run{r}.parquet"));
            record(&[(&pair, &out, 50, 46_500 + k as u16 * 10 + r, 1)], sleep);
            runs[k].push(out.to_str().unwrap().to_string());
        }
    }
    let args = |base: &[String], cand: &[String]| {
        let mut a: Vec<String> = vec!["--base".into()];
        a.extend(base.iter().cloned());
        a.push("--candidate".into());
        a.extend(cand.iter().cloned());
        a
    };
    let same = args(&runs[0], &runs[1]);
    let same: Vec<&str> = same.iter().map(String::as_str).collect();
    let (code, d) = diff(&same, None);
    let row = app_row(&d).expect("a stage ends at rx_app");
    eprintln!("runs, same scenario: exit {code}: {row}");
    assert_eq!(row["method"], "runs");
    assert_eq!(
        row["runs_p50_ns"][0].as_array().unwrap().len(),
        RUNS as usize
    );
    assert_eq!(code, 0, "{}", d["regressions"]);
    let shifted = args(&runs[0], &runs[2]);
    let shifted: Vec<&str> = shifted.iter().map(String::as_str).collect();
    let (code, d) = diff(&shifted, None);
    let row = app_row(&d).expect("a stage ends at rx_app");
    eprintln!("runs, 30% longer sleep: exit {code}: {row}");
    assert_eq!(row["method"], "runs");
    assert_eq!(row["verdict"], "slower");
    assert_eq!(code, 1);
    assert!(
        d["regressions"].to_string().contains("rx_app slower"),
        "{}",
        d["regressions"]
    );
}
