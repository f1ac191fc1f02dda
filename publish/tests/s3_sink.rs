//! The S3 sink against a real S3 server: a multipart upload of a large file reads back byte for
//! byte with its checksum. Needs a server, so it is `#[ignore]`d here and run by
//! `scripts/test-publish` (through `publish/tests/s3_e2e.py`), which starts one and sets
//! `CALLREC_TEST_S3_URL` and the `AWS_*` environment.

use callrec::publish::{ObjectSink, Upload};
use callrec::PublishConfig;
use callrec_publish::{S3Sink, CHECKSUM_KEY};
use sha2::{Digest, Sha256};

#[test]
#[ignore = "needs an S3 server: run by scripts/test-publish"]
fn a_large_file_goes_up_in_parts_and_reads_back_whole() {
    let url = std::env::var("CALLREC_TEST_S3_URL").expect("CALLREC_TEST_S3_URL");
    let sink = S3Sink::from_env(&PublishConfig::new(url.clone()))
        .unwrap()
        .with_multipart(5 << 20, 5 << 20);
    // Removed on drop, whether the test passes or panics.
    let dir = tempfile::Builder::new()
        .prefix("callrec-s3-sink-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("large.wav");
    // 12 MiB + 7 bytes of a pattern that differs in every part: three parts, the last short.
    let data: Vec<u8> = (0..(12u32 << 20) + 7)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    let key = "multipart/rest_api/recordings/large.wav";
    let sent = sink
        .put(&Upload {
            key,
            path: &path,
            metadata: &[("id", "big".to_string()), ("reason", "duration".into())],
        })
        .unwrap();
    let digest: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sent.size, data.len() as u64);
    assert_eq!(sent.checksum.as_deref(), Some(digest.as_str()));
    let stored = sink.head(key).unwrap().expect("the object exists");
    assert_eq!(stored, sent);
    assert_eq!(sink.head("multipart/absent.wav").unwrap(), None);
    // Print what an independent client must find (s3_e2e.py reads it back with boto3).
    println!("UPLOADED {key} {} {digest} {CHECKSUM_KEY}", data.len());
    std::fs::remove_dir_all(&dir).unwrap();
}
