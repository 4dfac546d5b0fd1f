//! Compiles the load balancer's C programs (src/bpf/*.bpf.c) with clang-19 for
//! the BPF target, one object per attach point, and a host program that prints
//! the C layout of the shared structs (checked against the Rust mirrors in a
//! test). Needs clang-19 and libbpf-dev (`make deps` installs them).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let include = Path::new("include");
    let clang = env::var("SHOAL_BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-changed=include");
    println!("cargo:rerun-if-changed=src/bpf");
    println!("cargo:rerun-if-changed=layout.c");
    println!("cargo:rerun-if-env-changed=SHOAL_BPF_CLANG");

    // The multiarch include directory holds asm/types.h for the host's arch.
    let multiarch = Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "x86_64-linux-gnu".to_string());

    let mut programs: Vec<PathBuf> = fs::read_dir("src/bpf")
        .expect("ebpf/src/bpf")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    programs.sort();
    for src in &programs {
        let stem = src
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".bpf.c", "");
        let obj = out.join(format!("{stem}.bpf.o"));
        run(Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg("-I")
            .arg(include)
            .arg(format!("-I/usr/include/{multiarch}"))
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&obj));
    }

    // The ABI version: a hash of the shared header and the map definitions, so
    // a shoald with other structs or maps pins into another directory.
    let mut abi: u64 = 0xcbf2_9ce4_8422_2325;
    for file in ["include/shoal_lb.h", "include/maps.h"] {
        for b in fs::read(file).expect(file) {
            abi ^= u64::from(b);
            abi = abi.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fs::write(out.join("abi.txt"), format!("{abi:016x}")).unwrap();

    let layout_bin = out.join("layout");
    run(Command::new("cc")
        .arg("-I")
        .arg(include)
        .arg("layout.c")
        .arg("-o")
        .arg(&layout_bin));
    let layout = Command::new(&layout_bin).output().expect("run layout");
    assert!(layout.status.success(), "layout program failed");
    fs::write(out.join("layout.txt"), layout.stdout).unwrap();
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is clang-19 installed? run `make deps`)"));
    assert!(status.success(), "{cmd:?} failed");
}
