//! Builds the eBPF object: clang when available (`TCPTAPE_CLANG` overrides the compiler), else
//! the committed `prebuilt/tcptape.bpf.o`. With `TCPTAPE_UPDATE_PREBUILT=1` the freshly compiled
//! object and its source hash are copied into `prebuilt/`.

use std::path::{Path, PathBuf};
use std::process::Command;

include!("src/source_hash.rs");

const OBJECT: &str = "tcptape.bpf.o";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join(OBJECT);
    for rel in BPF_SOURCES {
        println!("cargo:rerun-if-changed={rel}");
    }
    println!("cargo:rerun-if-changed=prebuilt/{OBJECT}");
    println!("cargo:rerun-if-env-changed=TCPTAPE_CLANG");
    println!("cargo:rerun-if-env-changed=TCPTAPE_UPDATE_PREBUILT");

    let explicit = std::env::var("TCPTAPE_CLANG").ok();
    let clang = explicit.clone().unwrap_or_else(|| "clang".into());
    let source = match compile(&root, &clang, &out) {
        Ok(()) => {
            if std::env::var("TCPTAPE_UPDATE_PREBUILT").is_ok_and(|v| v == "1") {
                update_prebuilt(&root, &out);
            }
            "clang"
        }
        Err(e) if explicit.is_some() => panic!("TCPTAPE_CLANG={clang}: {e}"),
        Err(e) => {
            println!("cargo:warning=using the prebuilt eBPF object ({e})");
            let prebuilt = root.join("prebuilt").join(OBJECT);
            std::fs::copy(&prebuilt, &out)
                .unwrap_or_else(|err| panic!("{}: {err}", prebuilt.display()));
            "prebuilt"
        }
    };
    println!("cargo:rustc-env=TCPTAPE_EBPF_SOURCE={source}");
}

fn compile(root: &Path, clang: &str, out: &Path) -> Result<(), String> {
    let status = Command::new(clang)
        .args([
            "-g",
            "-O2",
            "-target",
            "bpf",
            "-D__TARGET_ARCH_x86",
            "-Wall",
            "-Werror",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("src/bpf"))
        .arg("-c")
        .arg(root.join("src/bpf/tcptape.bpf.c"))
        .arg("-o")
        .arg(out)
        .status()
        .map_err(|e| format!("{clang} not runnable: {e}"))?;
    if !status.success() {
        return Err(format!("{clang} failed ({status})"));
    }
    // DWARF is not needed at load time (BTF is kept): strip it when llvm-strip is around.
    let strip = Path::new(clang)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("llvm-strip"), |d| d.join("llvm-strip"));
    let _ = Command::new(strip).arg("-g").arg(out).status();
    Ok(())
}

fn update_prebuilt(root: &Path, out: &Path) {
    let dir = root.join("prebuilt");
    std::fs::copy(out, dir.join(OBJECT)).expect("copying the object into prebuilt/");
    let hash = bpf_source_hash(root).expect("hashing the C sources");
    std::fs::write(dir.join(format!("{OBJECT}.sources")), format!("{hash}\n"))
        .expect("writing the source hash");
}
