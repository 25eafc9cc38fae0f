//! Written bytes and write calls, held against what the application itself wrote (root only;
//! skipped with a printed reason elsewhere).
//!
//! A write on a blocking socket whose send buffer is full sleeps inside the kernel and goes on
//! later, maybe on another CPU; several threads may write on one socket at once. Each write call
//! must be one `tx_sendmsg` event with the bytes the call returned, whatever happened in between.

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tcptape_e2e::netns::{spawn_in, Pair};
use tcptape_e2e::recorder::{record_to_temp, record_to_temp_with_env};
use tcptape_e2e::{should_run, traffic};

/// What one writer thread did: calls that wrote something, and the bytes they returned.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Written {
    calls: u64,
    bytes: u64,
}

impl std::ops::Add for Written {
    type Output = Written;
    fn add(self, o: Written) -> Written {
        Written {
            calls: self.calls + o.calls,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Writes `writes` buffers of `size` bytes with one `write` call each (counting any short write's
/// own call), on a socket shared with other writers.
fn write_counted(s: &TcpStream, writes: usize, size: usize) -> Result<Written, String> {
    let buf = vec![0x42u8; size];
    let mut w = Written::default();
    let mut s = s;
    for _ in 0..writes {
        let mut off = 0;
        while off < size {
            let n = s.write(&buf[off..]).map_err(|e| format!("write: {e}"))?;
            off += n;
            w.calls += 1;
            w.bytes += n as u64;
        }
    }
    Ok(w)
}

/// A small send buffer (the kernel doubles it to 64 KiB): a 256 KiB write cannot fit, so every one
/// of them sleeps midway while the reader sleeps.
fn small_send_buffer(s: &TcpStream) {
    let bytes: libc::c_int = 32 << 10;
    // SAFETY: a valid socket descriptor and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_SNDBUF");
}

/// Moves thread `tid` between the CPUs every millisecond until `stop`: a write that sleeps
/// resumes on another CPU than it started on.
fn migrate(tid: libc::pid_t, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: a zeroed cpu_set_t filled by CPU_SET, passed with its size.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(i % cpus, &mut set);
                libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// Connects from namespace A, runs `threads` writers on the one socket (each `writes` writes of
/// `size` bytes, each moved between CPUs while it writes), closes, and returns the local port and
/// what was written in total.
fn writers(pair: &Pair, port: u16, threads: usize, writes: usize, size: usize) -> (u16, Written) {
    let addr = pair.addr_b.clone();
    spawn_in(&pair.a, move || {
        let s = traffic::connect(&addr, port)?;
        small_send_buffer(&s);
        let local = s.local_addr().map_err(|e| e.to_string())?.port();
        let s = Arc::new(s);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    let stop = Arc::new(AtomicBool::new(false));
                    let mover = migrate(tid, Arc::clone(&stop));
                    let w = write_counted(&s, writes, size);
                    stop.store(true, Ordering::Relaxed);
                    mover.join().unwrap();
                    w
                })
            })
            .collect();
        let mut total = Written::default();
        for h in handles {
            total = total + h.join().map_err(|_| "a writer panicked".to_string())??;
        }
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())?;
        let mut sink = [0u8; 64];
        let mut s = &*s;
        while std::io::Read::read(&mut s, &mut sink).map_err(|e| e.to_string())? > 0 {}
        Ok((local, total))
    })
    .join()
    .unwrap()
    .expect("writers")
}

/// Three connections' worth of blocking writes through the flavor of `tx_sendmsg` that the
/// recorder picks with `env`, checked against what the writers did.
fn writes_are_exact_through(env: &[(&str, &str)], flavor: &str, port: u16) {
    let pair = Pair::new().expect("network namespaces");
    let l = traffic::listen_in(&pair.b, &pair.addr_b, port).expect("listen");
    let mut flows = Vec::new();
    let r = record_to_temp_with_env(None, &["-p", &port.to_string()], env, || {
        // A reader that sleeps 3 ms after every 64 KiB read: the writers block midway.
        let rx =
            std::thread::spawn(move || traffic::receive(l, 2, 64 << 10, Duration::from_millis(3)));
        // One writer: 23 writes of 256 KiB. Then three writers sharing one socket.
        flows.push(writers(&pair, port, 1, 23, 256 << 10));
        flows.push(writers(&pair, port, 3, 6, 256 << 10));
        let read = rx.join().unwrap().expect("receive");
        let written: u64 = flows.iter().map(|(_, w)| w.bytes).sum();
        assert_eq!(read, written, "the reader read what was written");
    });
    let plan = r
        .meta
        .attach_plan
        .iter()
        .find(|s| s.stage == "tx_sendmsg")
        .expect("tx_sendmsg in the plan");
    assert_eq!(plan.chosen.as_deref(), Some(flavor), "{plan:?}");
    assert_eq!(r.stage_lost("tx_sendmsg"), 0, "tx_sendmsg events were lost");
    for (local, w) in &flows {
        let events: Vec<_> = r
            .of("tx_sendmsg")
            .filter(|x| x.sport == Some(*local) && x.dport == Some(port))
            .collect();
        let recorded = Written {
            calls: events.len() as u64,
            bytes: events.iter().map(|x| x.len.unwrap_or(0) as u64).sum(),
        };
        assert_eq!(recorded, *w, "connection from port {local}");
        // Every event names the writing process (this one) and where its bytes start.
        assert!(events
            .iter()
            .all(|x| x.pid == Some(std::process::id()) && x.seq.is_some()));
    }
}

#[test]
fn each_write_call_is_one_event_with_the_bytes_it_wrote() {
    if !should_run("each_write_call_is_one_event_with_the_bytes_it_wrote") {
        return;
    }
    writes_are_exact_through(&[], "tp_btf", 45_611);
}

/// The classic tracepoint records name no socket at the start of a call: the end
/// (`sock_send_length`) does, and says where the bytes went.
#[test]
fn each_write_call_is_one_event_through_the_classic_tracepoints_too() {
    if !should_run("each_write_call_is_one_event_through_the_classic_tracepoints_too") {
        return;
    }
    writes_are_exact_through(
        &[("TCPTAPE_DISABLE_MECHANISMS", "fentry,kprobe,tp_btf")],
        "tracepoint",
        45_613,
    );
}

/// Writes `total` bytes on a non-blocking socket in `size`-byte calls, waiting for room between
/// them: a call may write part of what it asked for. Returns the calls that wrote something,
/// the bytes written, and how many calls wrote less than they asked for.
fn write_nonblocking(s: &TcpStream, total: usize, size: usize) -> Result<(Written, u64), String> {
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let buf = vec![0x24u8; size];
    let (mut w, mut partial, mut left) = (Written::default(), 0u64, total);
    let mut s = s;
    while left > 0 {
        let want = left.min(size);
        match s.write(&buf[..want]) {
            Ok(n) => {
                w.calls += 1;
                w.bytes += n as u64;
                partial += u64::from(n < want);
                left -= n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fd = libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut fd, 1, 1000) };
            }
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok((w, partial))
}

#[test]
fn a_partial_write_is_recorded_with_the_bytes_it_wrote() {
    if !should_run("a_partial_write_is_recorded_with_the_bytes_it_wrote") {
        return;
    }
    let port = 45_612u16;
    let pair = Pair::new().expect("network namespaces");
    let l = traffic::listen_in(&pair.b, &pair.addr_b, port).expect("listen");
    let mut result = None;
    let r = record_to_temp(None, &["-p", &port.to_string()], || {
        let rx =
            std::thread::spawn(move || traffic::receive(l, 1, 64 << 10, Duration::from_millis(2)));
        let addr = pair.addr_b.clone();
        let done = spawn_in(&pair.a, move || {
            let s = traffic::connect(&addr, port)?;
            small_send_buffer(&s);
            let local = s.local_addr().map_err(|e| e.to_string())?.port();
            let (w, partial) = write_nonblocking(&s, 4 << 20, 256 << 10)?;
            s.shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())?;
            let mut sink = [0u8; 64];
            let mut s = &s;
            while std::io::Read::read(&mut s, &mut sink).map_err(|e| e.to_string())? > 0 {}
            Ok((local, w, partial))
        })
        .join()
        .unwrap()
        .expect("writer");
        assert_eq!(rx.join().unwrap().expect("receive"), 4 << 20);
        result = Some(done);
    });
    let (local, w, partial) = result.expect("the writer ran");
    // A 256 KiB call on a 64 KiB send buffer writes part of it: the case this test is about.
    assert!(partial > 0, "no write was partial ({w:?})");
    assert_eq!(r.stage_lost("tx_sendmsg"), 0);
    let events: Vec<_> = r
        .of("tx_sendmsg")
        .filter(|x| x.sport == Some(local) && x.dport == Some(port))
        .collect();
    let recorded = Written {
        calls: events.len() as u64,
        bytes: events.iter().map(|x| u64::from(x.len.unwrap_or(0))).sum(),
    };
    assert_eq!(recorded, w, "{partial} partial writes");
}
