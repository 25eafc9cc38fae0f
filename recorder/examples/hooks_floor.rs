//! Attaches every `tp_btf` program of a BPF object and waits to be killed: the overhead floor
//! that `recorder/scripts/overhead.sh` measures with `OVERHEAD_FLOOR=1`, using the object built
//! from `recorder/scripts/hooks_floor.bpf.c` (programs that return at once).
//!
//! `cargo run --release -p tcptape-recorder --example hooks_floor -- OBJECT` (root)

use anyhow::{bail, Context, Result};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

fn main() -> Result<()> {
    let Some(path) = std::env::args().nth(1) else {
        bail!("usage: hooks_floor OBJECT");
    };
    let btf = Btf::from_sys_fs().context("reading the kernel BTF")?;
    let mut ebpf = Ebpf::load_file(&path).with_context(|| format!("loading {path}"))?;
    let mut attached = Vec::new();
    for (name, prog) in ebpf.programs_mut() {
        let tp: &mut BtfTracePoint = prog.try_into()?;
        // A tracepoint this kernel lacks is left out, as the recorder leaves out its stage.
        match tp
            .load(name, &btf)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                tp.attach()?;
                Ok(())
            }) {
            Ok(()) => attached.push(name.to_string()),
            Err(e) => eprintln!("{name}: not attached: {e:#}"),
        }
    }
    eprintln!("attached {} hooks: {}", attached.len(), attached.join(" "));
    // The links live as long as `ebpf`: until the process is killed. A shell starts background
    // jobs with SIGINT ignored; Ctrl-C and `kill -INT` should still end this one.
    // SAFETY: restores a default disposition; no handler runs.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    loop {
        std::thread::park();
    }
}
