//! Links the bare-metal hypervisor with its own linker script; host test builds need nothing.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/hyp.ld");
    }
    println!("cargo:rerun-if-changed=hyp.ld");
    println!("cargo:rerun-if-changed=src/arch/aarch64/entry.S");
    println!("cargo:rerun-if-changed=src/arch/aarch64/vectors.S");
}
