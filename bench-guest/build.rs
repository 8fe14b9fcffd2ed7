//! Links the bare-metal guest with its own linker script; host builds need nothing.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/image.ld");
    }
    println!("cargo:rerun-if-changed=image.ld");
    println!("cargo:rerun-if-changed=src/entry.S");
}
