//! Gives the shared library the soname `libcallrec.so.<major>` on Linux, so a binary linked
//! against it records the ABI version it needs (`readelf -d` shows `NEEDED libcallrec.so.0`)
//! and a packaged callrec can be upgraded in place within one major version.
//!
//! Cargo names the file `libcallrec_ffi.so` (the crate's library is `callrec_ffi`, because
//! `callrec` is the engine crate's library); `scripts/install-c` installs it under the name
//! the soname gives, `libcallrec.so.<major>.<minor>.<patch>`, with the `.so.<major>` and `.so`
//! links, as `cargo cinstall` would.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // ELF with GNU ld or lld; other platforms name shared libraries their own way.
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcallrec.so.{major}");
    }
}
