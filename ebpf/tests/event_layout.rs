//! What is written twice, in C for the programs and in Rust for the recorder, is one thing: the
//! C mirror of the event (`ebpf/include/event.h`) has the same layout as `RawEvent`, field by
//! field, and the same valid bits (compiled with the host C compiler, which must agree with
//! clang's BPF target on the layout of fixed-width fields); the filter capacities (`MAX_*`) and
//! the map names the loader looks up are those of `capture.bpf.h`. (The programs against the
//! attach plan: `recorder/src/attach_plan.rs`.)

use std::process::Command;
use tcptape_common::event::{
    RawBatch, RawBatches, RAW_BATCH_LAYOUT, RAW_EVENT_FIELDS, RAW_EVENT_SIZE,
};
use tcptape_common::stage::Stage;

fn compile_and_run(body: &str) -> String {
    let dir = tempdir();
    let src = dir.join("layout.c");
    let bin = dir.join("layout");
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#include \"event.h\"\nint main(void) {{\n{body}\nreturn 0; }}\n"
        ),
    )
    .unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I", include, "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("the C compiler '{cc}' is needed for this test: {e}"));
    assert!(
        out.status.success(),
        "compiling event.h failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    String::from_utf8(run.stdout).unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tcptape-layout-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_field_has_the_same_offset_in_c_and_rust() {
    let mut body = "printf(\"size %zu\\n\", sizeof(struct tcptape_event));\n".to_string();
    for (name, _) in RAW_EVENT_FIELDS {
        body.push_str(&format!(
            "printf(\"{name} %zu\\n\", offsetof(struct tcptape_event, {name}));\n"
        ));
    }
    let out = compile_and_run(&body);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(format!("size {RAW_EVENT_SIZE}").as_str())
    );
    for ((name, off), line) in RAW_EVENT_FIELDS.iter().zip(lines) {
        assert_eq!(line, format!("{name} {off}"), "field {name}");
    }
}

#[test]
fn the_staging_structs_have_the_same_layout_in_c_and_rust() {
    let mut body = String::from(
        "printf(\"batch %zu\\n\", sizeof(struct tcptape_batch));\n\
         printf(\"batches %zu\\n\", sizeof(struct tcptape_batches));\n",
    );
    for (st, field, _) in RAW_BATCH_LAYOUT {
        body.push_str(&format!(
            "printf(\"{st}.{field} %zu\\n\", offsetof(struct {st}, {field}));\n"
        ));
    }
    let out = compile_and_run(&body);
    let mut want = vec![
        format!("batch {}", std::mem::size_of::<RawBatch>()),
        format!("batches {}", std::mem::size_of::<RawBatches>()),
    ];
    want.extend(
        RAW_BATCH_LAYOUT
            .iter()
            .map(|(st, field, off)| format!("{st}.{field} {off}")),
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

#[test]
fn stage_codes_match_the_c_enum() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/event.h")).unwrap();
    for stage in Stage::ALL {
        let c_name = format!("ST_{} = {},", stage.name().to_uppercase(), stage.code());
        assert!(header.contains(&c_name), "event.h lacks `{c_name}`");
    }
}

#[test]
fn the_valid_bits_are_the_same_in_c_and_rust() {
    use tcptape_common::event::valid;
    let bits = [
        ("V_SKB", valid::SKB),
        ("V_SOCK", valid::SOCK),
        ("V_PID", valid::PID),
        ("V_NETNS", valid::NETNS),
        ("V_IFINDEX", valid::IFINDEX),
        ("V_FLOW", valid::FLOW),
        ("V_LEN", valid::LEN),
        ("V_SEQ", valid::SEQ),
        ("V_TCP", valid::TCP),
        ("V_STATE", valid::STATE),
        ("V_CA_STATE", valid::CA_STATE),
        ("V_DROP", valid::DROP),
        ("V_ERR", valid::ERR),
        ("V_SEGS", valid::SEGS),
        ("V_CGROUP", valid::CGROUP),
        ("V_TASK_CGROUP", valid::TASK_CGROUP),
        ("V_TCP_HDR", valid::TCP_HDR),
    ];
    // Every V_ define of the header is in the list above, and no two bits are one.
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/event.h")).unwrap();
    let defined: Vec<&str> = header
        .lines()
        .filter_map(|l| l.strip_prefix("#define V_"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        defined.len(),
        bits.len(),
        "V_ defines in event.h: {defined:?}"
    );
    let mut seen = 0u32;
    for (_, b) in bits {
        assert_eq!(seen & b, 0, "bit {b:#x} used twice");
        seen |= b;
    }
    let body: String = bits
        .iter()
        .map(|(name, _)| format!("printf(\"{name} %u\\n\", (unsigned){name});\n"))
        .collect();
    let out = compile_and_run(&body);
    for ((name, value), line) in bits.iter().zip(out.lines()) {
        assert_eq!(line, format!("{name} {value}"), "{name}");
    }
}

/// `#define NAME VALUE` of a C source.
fn defines(src: &str) -> std::collections::BTreeMap<String, String> {
    src.lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

#[test]
fn the_filter_capacities_and_map_names_are_the_programs() {
    use tcptape_ebpf::{limits, names};
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/bpf/capture.bpf.h"
    ))
    .unwrap();
    let d = defines(&src);
    for (name, rust) in [
        ("MAX_PORTS", limits::PORTS),
        ("MAX_CIDRS", limits::CIDRS),
        ("MAX_PIDS", limits::PIDS),
        ("MAX_NETNS", limits::NETNS),
        ("MAX_IFACES", limits::IFACES),
    ] {
        assert_eq!(
            d.get(name).map(String::as_str),
            Some(rust.to_string().as_str()),
            "{name} in capture.bpf.h and tcptape_ebpf::limits"
        );
    }
    // The maps the loader looks up by name are maps of the programs.
    for name in [
        names::RINGS,
        names::SEEN,
        names::LOST,
        names::BATCHES,
        names::LISTEN_PORTS,
    ] {
        assert!(
            src.contains(&format!("}} {name} SEC(\".maps\");")),
            "map {name} is not defined in capture.bpf.h"
        );
    }
}
