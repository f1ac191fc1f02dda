//! `callrec record` end to end: the two JSON lines, the file, the exit codes.

use callrec::g711::{encode_into, Codec};
use callrec::wav;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A fresh store path (not yet created) in a new temporary directory.
fn store(name: &str) -> TestDir {
    test_dir(&format!("callrec-cli-{name}-"))
}

/// A test's directory, removed with its temporary parent on drop (passed or panicked).
struct TestDir {
    _root: tempfile::TempDir,
    path: PathBuf,
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn test_dir(prefix: &str) -> TestDir {
    let root = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory");
    let path = root.path().join("store");
    TestDir { _root: root, path }
}

fn callrec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callrec"))
        .args(args)
        .output()
        .unwrap()
}

fn example() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.wav").to_owned()
}

/// Checks the two lines and returns the finished result and the file's audio.
fn two_events(out: &Output, store: &Path) -> (Value, Vec<u8>, u16) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let finished: Value = serde_json::from_str(lines[0]).unwrap();
    let mut available: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(finished["action"], "record");
    assert_eq!(finished["result"]["file_available"], false);
    assert_eq!(available["result"]["file_available"], true);
    available["result"]["file_available"] = Value::Bool(false);
    assert_eq!(available, finished);
    let name = finished["result"]["filename"].as_str().unwrap();
    let bytes = std::fs::read(store.join(name.trim_start_matches('/'))).unwrap();
    let info = wav::parse(&bytes).unwrap();
    (
        finished["result"].clone(),
        bytes[info.data].to_vec(),
        info.format_tag,
    )
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn the_readme_example() {
    let dir = store("example");
    let out = callrec(&["record", &example(), "--store", dir.to_str().unwrap()]);
    let (r, audio, tag) = two_events(&out, &dir);
    assert_eq!(r["reason"], "silence");
    assert_eq!(r["contains_sound"], true);
    assert_eq!(r["id"], "");
    assert_eq!(tag, wav::FORMAT_ALAW);
    // The recording is one contiguous span of the input, starting before the speech
    // (0.4 s of silence lead, less the 0.2 s pre-roll) and ending 3 s into the trailing silence.
    let input = std::fs::read(example()).unwrap();
    let data = &input[wav::parse(&input).unwrap().data];
    let start = position(data, &audio[..4000]).expect("recorded audio comes from the input");
    assert_eq!(&data[start..start + audio.len()], &audio[..]);
    assert!(start <= 3200 && start.is_multiple_of(160), "start {start}");
    let seconds = r["seconds_duration"].as_f64().unwrap();
    assert_eq!(seconds, (audio.len() as f64 / 800.0).round() / 10.0);
    let trailing = data.len() - (start + audio.len());
    assert!(trailing > 8000, "stopped on silence before the input ended");
}

fn pcm_call(path: &Path) -> Vec<i16> {
    // 0.5 s quiet, 1.5 s of a two-tone "voice" whose level rises and falls by 14 dB every
    // 240 ms like syllables (a steady tone is background to the detector), 1 s quiet.
    let mut samples = Vec::new();
    for i in 0..24_000 {
        let t = i as f64 / 8000.0;
        let voiced = (4000..16_000).contains(&i);
        let s = if voiced {
            let syllables = 0.6 + 0.4 * (std::f64::consts::TAU * t / 0.24).sin();
            syllables
                * (6000.0 * (std::f64::consts::TAU * 300.0 * t).sin()
                    + 3000.0 * (std::f64::consts::TAU * 1300.0 * t).sin())
        } else {
            ((i * 7919) % 31) as f64 - 15.0
        };
        samples.push(s as i16);
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in &samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    samples
}

#[test]
fn pcm_input_is_encoded_to_the_codec_and_digits_barge_in() {
    let dir = store("pcm");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("call.wav");
    let samples = pcm_call(&input);
    let out = callrec(&[
        "record",
        input.to_str().unwrap(),
        "--store",
        dir.to_str().unwrap(),
        "--codec",
        "ulaw",
        "--options",
        r##"{"id":"ticket-9","barge_in_digits":"#9"}"##,
        "--digit",
        "1.0:5",
        "--digit",
        "1.5:9",
    ]);
    let (r, audio, tag) = two_events(&out, &dir);
    assert_eq!(
        (r["reason"].as_str(), r["barge_in_digit"].as_str()),
        (Some("bargein"), Some("9"))
    );
    assert_eq!(r["id"], "ticket-9");
    assert_eq!(tag, wav::FORMAT_ULAW);
    // Sound starts at 0.5 s (frame 25); pre-roll from frame 15; the digit at 1.5 s (frame 75).
    let mut want = vec![0u8; samples.len()];
    encode_into(Codec::Ulaw, &samples, &mut want);
    assert_eq!(audio, want[15 * 160..75 * 160]);
    assert_eq!(r["seconds_duration"], 1.2);
}

#[test]
fn pause_at_and_resume_at_splice_the_file() {
    let dir = store("pause");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("call.wav");
    let samples = pcm_call(&input);
    let mut want = vec![0u8; samples.len()];
    encode_into(Codec::Alaw, &samples, &mut want);
    for behavior in ["skip", "silence"] {
        let out = callrec(&[
            "record",
            input.to_str().unwrap(),
            "--store",
            dir.to_str().unwrap(),
            "--options",
            &format!(r#"{{"pause_behavior":"{behavior}"}}"#),
            "--pause-at",
            "0.8",
            "--resume-at",
            "1.2",
            "--pause-at",
            "1.6",
            "--resume-at",
            "1.7",
        ]);
        let (r, audio, _) = two_events(&out, &dir);
        assert_eq!(r["reason"], "hangup");
        // Sound from 0.5 s: pre-roll from 0.3 s (sample 2400); paused 0.8-1.2 s and 1.6-1.7 s.
        let gap = |from: usize, to: usize| match behavior {
            "skip" => Vec::new(),
            _ => vec![Codec::Alaw.silence(); to - from],
        };
        let expected = [
            &want[2400..6400],
            &gap(6400, 9600)[..],
            &want[9600..12_800],
            &gap(12_800, 13_600)[..],
            &want[13_600..],
        ]
        .concat();
        assert_eq!(audio.len(), expected.len(), "{behavior}");
        assert!(
            audio == expected,
            "{behavior}: the file is the expected splice"
        );
    }
    let out = callrec(&["record", input.to_str().unwrap(), "--pause-at", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hangup_abort_and_format() {
    let dir = store("hangup");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "record".to_owned(),
            example(),
            "--store".into(),
            dir.to_str().unwrap().into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        callrec(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (r, audio, _) = two_events(&run(&["--hangup-at", "2"]), &dir);
    assert_eq!(r["reason"], "hangup");
    assert!(audio.len() < 16_000);
    let (r, _, _) = two_events(&run(&["--abort-at", "1.5"]), &dir);
    assert_eq!(r["reason"], "aborted");
    let (r, _, tag) = two_events(
        &run(&["--options", r#"{"format":"ulaw","seconds_max_duration":2}"#]),
        &dir,
    );
    assert_eq!(
        (r["reason"].as_str(), r["seconds_duration"].as_f64()),
        (Some("duration"), Some(2.0))
    );
    assert_eq!(tag, wav::FORMAT_ULAW);
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let dir = store("bad");
    let d = dir.to_str().unwrap();
    let out = callrec(&[
        "record",
        &example(),
        "--store",
        d,
        "--options",
        r#"{"seconds_max_duration":-5}"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("seconds_max_duration") && err.contains("negative"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    assert!(out.stdout.is_empty());

    let out = callrec(&["record", "/nonexistent.wav", "--store", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.wav"));

    let out = callrec(&["record", &example(), "--store", d, "--digit", "1:x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DTMF"));

    let not_wav = dir.join("x.wav");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&not_wav, b"hello").unwrap();
    let out = callrec(&["record", not_wav.to_str().unwrap(), "--store", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a RIFF WAVE"));
}

#[test]
fn record_encrypted_then_decrypt_with_the_cli_and_openssl() {
    let dir = store("decrypt");
    let d = dir.to_str().unwrap();
    let key = "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b";
    let iv = "000102030405060708090a0b0c0d0e0f";
    let plain_out = callrec(&["record", &example(), "--store", d]);
    let (plain_result, plain_audio, _) = two_events(&plain_out, &dir);
    let plain_name = plain_result["filename"]
        .as_str()
        .unwrap()
        .trim_start_matches('/');
    let plain = std::fs::read(dir.join(plain_name)).unwrap();
    for mode in ["aescbc", "aesctr"] {
        let options = format!(
            r#"{{"encryption_cipher":{{"type":"{mode}","key":"{key}","initialisation_vector":"{iv}"}}}}"#
        );
        let out = callrec(&["record", &example(), "--store", d, "--options", &options]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let r: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            r["result"]["seconds_duration"],
            plain_result["seconds_duration"]
        );
        let file = dir.join(
            r["result"]["filename"]
                .as_str()
                .unwrap()
                .trim_start_matches('/'),
        );
        assert_ne!(&std::fs::read(&file).unwrap()[..4], b"RIFF");
        // callrec decrypt -o OUT
        let dec = dir.join(format!("{mode}.wav"));
        let f = file.to_str().unwrap();
        let o = callrec(&[
            "decrypt",
            f,
            "--type",
            mode,
            "--key",
            key,
            "--iv",
            iv,
            "-o",
            dec.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(std::fs::read(&dec).unwrap(), plain);
        // callrec decrypt to stdout
        let o = callrec(&[
            "decrypt",
            f,
            "--type",
            mode,
            "--key",
            &key.to_uppercase(),
            "--iv",
            iv,
        ]);
        assert_eq!(o.stdout, plain);
        // openssl
        let o = Command::new("openssl")
            .args([
                "enc",
                "-d",
                &format!("-aes-192-{}", &mode[3..]),
                "-K",
                key,
                "-iv",
                iv,
                "-in",
                f,
            ])
            .output()
            .unwrap();
        assert_eq!(o.stdout, plain, "openssl {mode}");
        assert_eq!(
            wav::parse(&o.stdout)
                .map(|i| o.stdout[i.data].to_vec())
                .unwrap(),
            plain_audio
        );
    }
    // Wrong key for CBC: exit 2, and no output file left behind.
    let enc = callrec(&[
        "record",
        &example(),
        "--store",
        d,
        "--options",
        &format!(
            r#"{{"encryption_cipher":{{"type":"aescbc","key":"{key}","initialisation_vector":"{iv}"}}}}"#
        ),
    ]);
    let r: Value = serde_json::from_str(
        String::from_utf8(enc.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let file = dir.join(
        r["result"]["filename"]
            .as_str()
            .unwrap()
            .trim_start_matches('/'),
    );
    let bad_out = dir.join("bad.wav");
    let o = callrec(&[
        "decrypt",
        file.to_str().unwrap(),
        "--type",
        "aescbc",
        "--key",
        &key.replace('8', "9"),
        "--iv",
        iv,
        "-o",
        bad_out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong key, IV or cipher type"));
    assert!(!bad_out.exists());
    // Bad key: exit 2 naming it.
    let o = callrec(&[
        "decrypt",
        file.to_str().unwrap(),
        "--type",
        "aescbc",
        "--key",
        "abc",
        "--iv",
        iv,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--key"));
    let o = callrec(&[
        "decrypt",
        file.to_str().unwrap(),
        "--type",
        "aesgcm",
        "--key",
        key,
        "--iv",
        iv,
    ]);
    assert_eq!(o.status.code(), Some(2));
    // A bad cipher in the options: exit 2 naming the field.
    let o = callrec(&[
        "record",
        &example(),
        "--store",
        d,
        "--options",
        r#"{"encryption_cipher":{"type":"aescbc","key":"00","initialisation_vector":"00"}}"#,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("encryption_cipher.key"));
}

/// `callrec` with the S3 environment of an object store that refuses every connection (a closed
/// loopback port): enough for a publishing engine to start; every upload fails.
fn callrec_refused_s3() -> Command {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrec"));
    cmd.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "cli-test")
        .env("AWS_SECRET_ACCESS_KEY", "cli-test-secret-0123456789");
    cmd
}

#[test]
fn one_publishing_engine_per_store_and_a_killed_one_frees_it() {
    let dir = store("publish-lock");
    let path = dir.to_str().unwrap();
    let url = "s3://recordings/lock";
    let mut first = callrec_refused_s3()
        .args([
            "record",
            &example(),
            "--store",
            path,
            "--publish",
            url,
            "--realtime",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first holds the store once its lock file names it.
    let lock = dir.join(".callrec-outbox").join("lock");
    let holder = format!("pid {},", first.id());
    let held = (0..1200).any(|_| {
        let named = std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&holder));
        if !named {
            std::thread::sleep(Duration::from_millis(25));
        }
        named
    });
    assert!(held, "the first engine never took the store's lock");
    // A second publishing engine (here the outbox flush) is refused: exit 1, the store and the
    // holder named, the secret never.
    let out = callrec_refused_s3()
        .args(["publish", "--store", path, "--publish", url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(path) && err.contains(&holder), "{err}");
    assert!(err.contains("one engine per store"), "{err}");
    assert!(!err.contains("cli-test-secret"), "{err}");
    // kill -9: the lock dies with the process, and the next engine takes the store. Its upload
    // is refused until the age bound: exit 3 (not available), not a start failure.
    first.kill().unwrap();
    first.wait().unwrap();
    let out = callrec_refused_s3()
        .args([
            "record",
            &example(),
            "--store",
            path,
            "--publish",
            url,
            "--publish-max-age",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("already publishing"), "{err}");
    assert_eq!(out.status.code(), Some(3), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_while_the_upload_waits_exits_and_leaves_the_recording_in_the_outbox() {
    use std::io::{BufRead, BufReader, Read};
    let dir = store("publish-sigterm");
    let path = dir.to_str().unwrap();
    let mut cli = callrec_refused_s3()
        .args([
            "record",
            &example(),
            "--store",
            path,
            "--publish",
            "s3://recordings/term",
            "--realtime",
            "--hangup-at",
            "0.5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(cli.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let finished: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(finished["result"]["reason"], "hangup");
    assert_eq!(finished["result"]["file_available"], false);
    // The object store refuses every upload, and max_age is an hour: without the signal the
    // CLI would wait for it. SIGTERM ends the wait after the shutdown's last attempt.
    let killed = Command::new("kill")
        .args(["-TERM", &cli.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = cli.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{rest}");
    assert_eq!(rest, "", "no available line: the upload never succeeded");
    // Nothing lost: the recording waits in the store's outbox for the next engine.
    let name = finished["result"]["filename"].as_str().unwrap();
    let journal = std::fs::read_to_string(dir.join(".callrec-outbox").join("journal")).unwrap();
    assert!(journal.contains(name), "{journal}");
    assert!(dir.join(name.trim_start_matches('/')).is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
