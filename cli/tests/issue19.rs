//! Issue 19, the CLI half (reproductions 12, 15, 16, 17): `decrypt -o` never replaces what is
//! not a regular file, a truncated recording prints no plaintext, `recover` leaves what is not
//! callrec's alone and works with a bare name, `record` prints exactly two lines with orphans in
//! the store, and never writes through a symlink in the store.
//!
//! The truth: the bytes callrec itself wrote (a plain recording of the same input), a
//! `.part` built here from a known header and known audio, and byte-for-byte comparisons of
//! what must be left alone.

use callrec::g711::Codec;
use callrec::wav;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY: &str = "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b";
const IV: &str = "000102030405060708090a0b0c0d0e0f";

/// A directory removed when the test ends.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("callrec-i19-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn callrec_in(cwd: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_callrec"));
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.output().unwrap()
}

fn callrec(args: &[&str]) -> Output {
    callrec_in(None, args)
}

fn example() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.wav")
}

/// Records examples/hello.wav with `options`; returns the file's path.
fn record(store: &Path, options: &str) -> PathBuf {
    let out = callrec(&[
        "record",
        example(),
        "--store",
        store.to_str().unwrap(),
        "--options",
        options,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    store.join(
        v["result"]["filename"]
            .as_str()
            .unwrap()
            .trim_start_matches('/'),
    )
}

fn cipher(mode: &str) -> String {
    format!(
        r#"{{"encryption_cipher":{{"type":"{mode}","key":"{KEY}","initialisation_vector":"{IV}"}}}}"#
    )
}

fn decrypt(file: &Path, mode: &str, out: Option<&Path>) -> Output {
    let mut args = vec![
        "decrypt",
        file.to_str().unwrap(),
        "--type",
        mode,
        "--key",
        KEY,
        "--iv",
        IV,
    ];
    if let Some(o) = out {
        args.extend(["-o", o.to_str().unwrap()]);
    }
    callrec(&args)
}

/// `n` reproducible pseudo-random bytes (xorshift64).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A `.part` exactly as callrec's writer leaves it when killed: the open-ended A-law header
/// and `audio` after it.
fn real_part(audio: &[u8]) -> Vec<u8> {
    let mut bytes = wav::header(Codec::Alaw, wav::OPEN_DATA_BYTES).to_vec();
    bytes.extend_from_slice(audio);
    bytes
}

/// Today's UTC day directory below a store root (`YYYY/MM/DD`), as `date -u` names it.
fn today() -> String {
    let o = Command::new("date")
        .args(["-u", "+%Y/%m/%d"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

#[test]
fn decrypt_o_refuses_a_fifo_a_symlink_and_a_directory() {
    let d = Dir::new("dest");
    let ctr = record(&d.0.join("store"), &cipher("aesctr"));
    let out = d.0.join("out");
    std::fs::create_dir(&out).unwrap();

    let fifo = out.join("fifo");
    let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let target = d.0.join("target.wav");
    std::fs::write(&target, b"not yours").unwrap();
    let link = out.join("link.wav");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let sub = out.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let before = names(&out);

    for (dest, what) in [(&fifo, "fifo"), (&link, "symlink"), (&sub, "directory")] {
        let o = decrypt(&ctr, "aesctr", Some(dest));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(dest.to_str().unwrap()), "{what}: {err}");
        assert!(err.contains("not a regular file"), "{what}: {err}");
        assert!(err.len() < 300, "{err}");
    }
    // Nothing replaced, nothing left beside them.
    assert_eq!(names(&out), before);
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"not yours");
    assert!(names(&sub).is_empty());

    // A regular file and a new path are written (0600), through a temporary file beside them.
    let plain = d.0.join("plain.wav");
    std::fs::write(&plain, b"old").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fresh = out.join("fresh.wav");
    for dest in [&plain, &fresh] {
        let o = decrypt(&ctr, "aesctr", Some(dest));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let meta = std::fs::symlink_metadata(dest).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let bytes = std::fs::read(dest).unwrap();
        assert!(wav::parse(&bytes).is_ok());
    }
    let mut expected = before.clone();
    expected.push("fresh.wav".into());
    expected.sort();
    assert_eq!(names(&out), expected, "no temporary file left");
}

#[test]
fn a_truncated_recording_prints_no_plaintext() {
    let d = Dir::new("trunc");
    let store = d.0.join("store");
    let ctr = record(&store, &cipher("aesctr"));
    let cbc = record(&store, &cipher("aescbc"));
    let ctr_bytes = std::fs::read(&ctr).unwrap();
    let cbc_bytes = std::fs::read(&cbc).unwrap();
    assert!(ctr_bytes.len() > 50_000, "long enough to be streamed");
    let cases = [
        (
            "aesctr",
            ctr_bytes[..ctr_bytes.len() - 100].to_vec(),
            "ctr-100",
        ),
        ("aesctr", ctr_bytes[..ctr_bytes.len() - 1].to_vec(), "ctr-1"),
        (
            "aescbc",
            cbc_bytes[..cbc_bytes.len() - 32].to_vec(),
            "cbc-32",
        ),
        ("aescbc", cbc_bytes[..cbc_bytes.len() - 5].to_vec(), "cbc-5"),
    ];
    for (mode, bytes, name) in cases {
        let cut = d.0.join(name);
        std::fs::write(&cut, &bytes).unwrap();
        let o = decrypt(&cut, mode, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(o.stdout.len(), 0, "{name}: plaintext written to stdout");
        assert!(err.contains(name), "{name}: {err}");
    }
    // The whole files still decrypt, to stdout, to the same bytes.
    let a = decrypt(&ctr, "aesctr", None);
    let b = decrypt(&cbc, "aescbc", None);
    assert!(a.status.success() && b.status.success());
    assert!(wav::parse(&a.stdout).is_ok());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn recover_leaves_what_is_not_callrecs_alone() {
    let d = Dir::new("garbage");
    let garbage = noise(5000);
    let part = d.0.join("g.wav.part");
    std::fs::write(&part, &garbage).unwrap();
    let o = callrec(&["recover", part.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("g.wav.part"), "{err}");
    assert_eq!(std::fs::read(&part).unwrap(), garbage, "rewritten");
    assert_eq!(names(&d.0), vec!["g.wav.part".to_owned()], "renamed");
    // A WAV header that is not the one callrec writes (PCM16 here) is not callrec's either.
    let mut pcm = b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\xff\xff\xff\xff".to_vec();
    pcm.extend(noise(3000));
    let pcm_part = d.0.join("p.wav.part");
    std::fs::write(&pcm_part, &pcm).unwrap();
    let o = callrec(&["recover", pcm_part.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(std::fs::read(&pcm_part).unwrap(), pcm);
}

#[test]
fn recover_works_with_a_bare_name_from_inside_the_directory() {
    let d = Dir::new("bare");
    let audio = noise(8000); // 1 s of A-law bytes
    let name = "10_00_00_0123456789abcdef.00007.wav";
    std::fs::write(d.0.join(format!("{name}.part")), real_part(&audio)).unwrap();
    let o = callrec_in(Some(&d.0), &["recover", &format!("{name}.part")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{name} 1.0\n"));
    assert_eq!(names(&d.0), vec![name.to_owned()]);
    let bytes = std::fs::read(d.0.join(name)).unwrap();
    let info = wav::parse(&bytes).unwrap();
    assert_eq!(info.truncated_from, None);
    assert_eq!(&bytes[info.data], &audio[..]);
}

#[test]
fn record_prints_two_lines_with_orphans_in_the_store() {
    let d = Dir::new("orphans");
    let store = d.0.join("store");
    let day = store.join("rest_api/recordings/2020/01/02");
    std::fs::create_dir_all(&day).unwrap();
    // Garbage with the store's naming, garbage with another name, a real orphan.
    let garbage = noise(5000);
    let bad_named = day.join("g.wav.part");
    let bad_content = day.join("01_02_03_0000000000000001.00001.wav.part");
    std::fs::write(&bad_named, &garbage).unwrap();
    std::fs::write(&bad_content, &garbage).unwrap();
    let orphan = "01_02_04_0000000000000002.00002.wav";
    let audio = noise(4000);
    std::fs::write(day.join(format!("{orphan}.part")), real_part(&audio)).unwrap();

    // Real time for a second: the recovery thread has long finished when the call ends.
    let o = callrec(&[
        "record",
        example(),
        "--store",
        store.to_str().unwrap(),
        "--realtime",
        "--hangup-at",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let ours: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["result"]["filename"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ours[0], ours[1]);
    assert!(!ours[0].contains("/2020/"), "{text}");
    // The real orphan was recovered and its two lines went to stderr.
    let bytes = std::fs::read(day.join(orphan)).unwrap();
    assert_eq!(&bytes[wav::parse(&bytes).unwrap().data], &audio[..]);
    let recovered: Vec<&str> = err.lines().filter(|l| l.contains(orphan)).collect();
    assert_eq!(recovered.len(), 2, "{err}");
    for l in &recovered {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["result"]["filename"].as_str().unwrap().ends_with(orphan));
    }
    // Both kinds of garbage were left alone, and named on stderr.
    assert_eq!(std::fs::read(&bad_named).unwrap(), garbage);
    assert_eq!(std::fs::read(&bad_content).unwrap(), garbage);
    assert!(err.contains("g.wav.part"), "{err}");
    assert!(
        err.contains("01_02_03_0000000000000001.00001.wav.part"),
        "{err}"
    );
    assert_eq!(
        names(&day),
        vec![
            "01_02_03_0000000000000001.00001.wav.part".to_owned(),
            orphan.to_owned(),
            "g.wav.part".to_owned(),
        ]
    );
}

#[test]
fn record_never_writes_through_a_symlink_in_the_store() {
    let d = Dir::new("symlink");
    let elsewhere = d.0.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let today = today();
    let (ymd, day_name) = today.rsplit_once('/').unwrap();

    // The day directory is a symlink.
    let store = d.0.join("store1");
    let month = store.join("rest_api/recordings").join(ymd);
    std::fs::create_dir_all(&month).unwrap();
    std::os::unix::fs::symlink(&elsewhere, month.join(day_name)).unwrap();
    // A component higher up is one.
    let store2 = d.0.join("store2");
    std::fs::create_dir_all(store2.join("rest_api")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, store2.join("rest_api/recordings")).unwrap();

    for s in [&store, &store2] {
        let o = callrec(&["record", example(), "--store", s.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("symbolic link"), "{err}");
        assert!(o.stdout.is_empty());
        assert!(names(&elsewhere).is_empty(), "written through the link");
    }
}
