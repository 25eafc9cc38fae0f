//! The test's own client and server: a sender that writes a known number of bytes and a
//! receiver that counts what it reads, optionally slowly.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Listens on `addr:port` (call it inside the receiver's namespace).
pub fn listen(addr: &str, port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((addr, port)).map_err(|e| format!("bind {addr}:{port}: {e}"))
}

/// [`listen`] inside network namespace `ns`: the socket stays in that namespace after the thread
/// that opened it ends.
pub fn listen_in(ns: &str, addr: &str, port: u16) -> Result<TcpListener, String> {
    let addr = addr.to_string();
    crate::netns::spawn_in(ns, move || listen(&addr, port))
        .join()
        .map_err(|_| "the listener thread panicked".to_string())?
}

/// Accepts `conns` connections one after another and reads each to the end; returns the bytes
/// read in total. `pause` sleeps between reads (a slow reader).
pub fn receive(
    listener: TcpListener,
    conns: usize,
    chunk: usize,
    pause: Duration,
) -> Result<u64, String> {
    let mut total = 0u64;
    let mut buf = vec![0u8; chunk];
    for _ in 0..conns {
        let (mut s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }
    Ok(total)
}

/// Connects to `addr:port` and writes `bytes` bytes in `chunk`-sized writes, then closes.
pub fn send(addr: &str, port: u16, bytes: u64, chunk: usize) -> Result<(), String> {
    send_counting(addr, port, bytes, chunk).map(|_| ())
}

/// [`send`], returning the socket's own count of retransmitted segments
/// (`tcp_info.tcpi_total_retrans`) once the peer has read everything.
pub fn send_counting(addr: &str, port: u16, bytes: u64, chunk: usize) -> Result<u32, String> {
    let mut s = connect(addr, port)?;
    write_and_close(&mut s, bytes, chunk)?;
    total_retrans(&s)
}

/// Writes `bytes` bytes in `chunk`-sized writes, shuts the sending side down and waits until the
/// peer has closed, so every byte was read before returning.
pub fn write_and_close(s: &mut TcpStream, bytes: u64, chunk: usize) -> Result<(), String> {
    let buf = vec![0x5au8; chunk];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        s.write_all(&buf[..n]).map_err(|e| format!("write: {e}"))?;
        left -= n as u64;
    }
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut sink = [0u8; 64];
    while s.read(&mut sink).map_err(|e| format!("read: {e}"))? > 0 {}
    Ok(())
}

/// `tcp_info.tcpi_total_retrans` of a socket.
pub fn total_retrans(s: &TcpStream) -> Result<u32, String> {
    use std::os::fd::AsRawFd;
    /// `offsetof(struct tcp_info, tcpi_total_retrans)` in the UAPI.
    const OFFSET: usize = 100;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < OFFSET + 4 {
        return Err(format!("TCP_INFO: {}", std::io::Error::last_os_error()));
    }
    Ok(u32::from_ne_bytes(
        info[OFFSET..OFFSET + 4].try_into().expect("4 bytes"),
    ))
}

/// Connects, retrying briefly while the listener comes up.
pub fn connect(addr: &str, port: u16) -> Result<TcpStream, String> {
    let mut last = String::new();
    for _ in 0..50 {
        match TcpStream::connect((addr, port)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("connect {addr}:{port}: {last}"))
}

/// Runs `conns` transfers of `bytes` each, in `chunk`-sized writes, from the pair's sender to a
/// receiver on `port` in the other namespace, in the background. The handle yields the bytes the
/// receiver read; it panics on any error (these are test transfers).
pub fn transfers(
    pair: &crate::netns::Pair,
    port: u16,
    conns: usize,
    bytes: u64,
    chunk: usize,
) -> std::thread::JoinHandle<u64> {
    use crate::netns::spawn_in;
    let addr = pair.addr_b.clone();
    let listener = listen_in(&pair.b, &addr, port).expect("listen");
    let receiver = std::thread::spawn(move || receive(listener, conns, chunk, Duration::ZERO));
    let ns = pair.a.clone();
    std::thread::spawn(move || {
        let sender = spawn_in(&ns, move || {
            for _ in 0..conns {
                send(&addr, port, bytes, chunk)?;
            }
            Ok(())
        });
        sender.join().expect("sender thread").expect("send");
        receiver.join().expect("receiver thread").expect("receive")
    })
}

/// What a [`counted_transfer`] did.
pub struct CountedTransfer {
    /// Bytes the receiver read.
    pub read: u64,
    /// How much each TCP counter ([`crate::netns::tcp_counters`]) grew during the transfer,
    /// both namespaces summed.
    pub grew: std::collections::HashMap<String, u64>,
}

impl CountedTransfer {
    /// The growth of counter `name` (0 if neither namespace has it).
    pub fn grew(&self, name: &str) -> u64 {
        self.grew.get(name).copied().unwrap_or(0)
    }
}

/// One transfer of `bytes` in `chunk`-sized writes from the pair's sender to a receiver on
/// `port`, with the TCP counters of both namespaces read before it and after both sockets can
/// send no more. Both ends retransmit (the receiver its FIN when the sender's ACK of it is
/// dropped), so both namespaces count; and a receiver's retransmitted FIN comes after the
/// transfer, so the counters are read only once the port is quiet.
pub fn counted_transfer(
    pair: &crate::netns::Pair,
    port: u16,
    bytes: u64,
    chunk: usize,
) -> Result<CountedTransfer, String> {
    use crate::netns::{spawn_in, tcp_counters_of};
    let addr = pair.addr_b.clone();
    let listener = listen_in(&pair.b, &addr, port)?;
    let counters = || -> Result<Vec<std::collections::HashMap<String, u64>>, String> {
        Ok(vec![tcp_counters_of(&pair.a)?, tcp_counters_of(&pair.b)?])
    };
    let before = counters()?;
    let receiver = std::thread::spawn(move || receive(listener, 1, 64 << 10, Duration::ZERO));
    spawn_in(&pair.a, move || send(&addr, port, bytes, chunk))
        .join()
        .map_err(|_| "the sender thread panicked")??;
    let read = receiver
        .join()
        .map_err(|_| "the receiver thread panicked")??;
    pair.wait_until_quiet(port, Duration::from_secs(20))?;
    let after = counters()?;
    let mut grew = std::collections::HashMap::new();
    for (b, a) in before.iter().zip(&after) {
        for (name, v) in a {
            let was = b.get(name).copied().unwrap_or(0);
            *grew.entry(name.clone()).or_insert(0) += v.saturating_sub(was);
        }
    }
    Ok(CountedTransfer { read, grew })
}
