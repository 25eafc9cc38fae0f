//! `tcptape-traffic`: the project's own TCP client and server for sample recordings and
//! benchmarks, run inside network namespaces with `ip netns exec`.
//!
//! ```text
//! tcptape-traffic sink ADDR PORT [CONNS] [PAUSE_MS]     read everything, pausing between reads
//! tcptape-traffic bulk ADDR PORT BYTES                  send BYTES and close
//! tcptape-traffic rr-server ADDR PORT RESP_BYTES PAUSE_MS
//!                                                       answer each request after a pause
//! tcptape-traffic rr-client ADDR PORT REQUESTS REQ_BYTES RESP_BYTES
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;
use tcptape_e2e::traffic;

fn num<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i)
        .ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("{what} must be a number"))
}

fn run(args: &[String]) -> Result<(), String> {
    let mode = args.first().map(String::as_str).unwrap_or("");
    let addr = args.get(1).cloned().unwrap_or_default();
    match mode {
        "sink" => {
            let port = num(args, 2, "PORT")?;
            let conns = num(args, 3, "CONNS").unwrap_or(1);
            let pause = Duration::from_millis(num(args, 4, "PAUSE_MS").unwrap_or(0));
            let l = traffic::listen(&addr, port)?;
            let n = traffic::receive(l, conns, 64 << 10, pause)?;
            println!("{n}");
            Ok(())
        }
        "bulk" => traffic::send(
            &addr,
            num(args, 2, "PORT")?,
            num(args, 3, "BYTES")?,
            128 << 10,
        ),
        "rr-server" => {
            let port = num(args, 2, "PORT")?;
            let resp = vec![0x42u8; num(args, 3, "RESP_BYTES")?];
            let pause = Duration::from_millis(num(args, 4, "PAUSE_MS")?);
            let l = traffic::listen(&addr, port)?;
            let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
            loop {
                // A slow reader: the request waits in the receive queue for `pause`.
                std::thread::sleep(pause);
                let mut len = [0u8; 4];
                match s.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut body).map_err(|e| e.to_string())?;
                s.write_all(&resp).map_err(|e| e.to_string())?;
            }
        }
        "rr-client" => {
            let port = num(args, 2, "PORT")?;
            let n: u32 = num(args, 3, "REQUESTS")?;
            let req = vec![0x41u8; num(args, 4, "REQ_BYTES")?];
            let mut resp = vec![0u8; num(args, 5, "RESP_BYTES")?];
            let mut s = traffic::connect(&addr, port)?;
            for _ in 0..n {
                s.write_all(&(req.len() as u32).to_be_bytes())
                    .and_then(|_| s.write_all(&req))
                    .and_then(|_| s.read_exact(&mut resp))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        _ => {
            Err("usage: tcptape-traffic sink|bulk|rr-server|rr-client ... (see the source)".into())
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcptape-traffic: {e}");
            ExitCode::FAILURE
        }
    }
}
