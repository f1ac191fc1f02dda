//! callrec-publish: the S3-compatible object sink for callrec's publisher (DESIGN §12).
//!
//! The core crate owns publishing's logic (the durable outbox, retries, verification, events:
//! see `callrec::publish`) and has no network code (DESIGN §7). This crate is the wire: an
//! [`ObjectSink`] on Apache Arrow's `object_store` (`aws` feature: SigV4 signing, retries with
//! backoff, multipart upload, `x-amz-checksum-sha256`), and [`start_engine`], which hosts (CLI,
//! C, Python, serve) call instead of `Engine::new` so that `publish` in the configuration just
//! works.
//!
//! Endpoint, region and credentials come from the standard S3 environment, read by
//! `object_store`: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; plain `http://` endpoints only with
//! `AWS_ALLOW_HTTP=true`. Requests are path-style unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
//!
//! Each object carries the result as user metadata (`x-amz-meta-id`, `-reason`,
//! `-seconds_duration`, `-contains_sound`, `-barge_in_digit`) and the file's SHA-256 in hex as
//! `x-amz-meta-sha256`; the PUT also sends `x-amz-checksum-sha256`, which stores that check.
//! The verification reads size and `sha256` back with a HEAD. Metadata values are ASCII
//! headers, so any other byte of a user `id` (and `%`) is percent-encoded (RFC 3986 style).

use callrec::publish::{ObjectSink, PublishTarget, StoredObject, Upload};
use callrec::{Engine, EngineConfig, PublishConfig};
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, GetOptions, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Files larger than this are uploaded in parts. S3 parts are 5 MiB to 5 GiB.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 << 20;
/// The size of each part of a multipart upload.
pub const DEFAULT_PART_BYTES: usize = 8 << 20;
/// Parts of one file in flight at once.
const PART_CONCURRENCY: usize = 4;
/// The metadata key of the content checksum (hex SHA-256 of the object's bytes).
pub const CHECKSUM_KEY: &str = "sha256";

/// An S3-compatible bucket (and key prefix) as an [`ObjectSink`].
pub struct S3Sink {
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
    url: String,
    multipart_threshold: u64,
    part_bytes: usize,
}

impl std::fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Sink").field("url", &self.url).finish()
    }
}

impl S3Sink {
    /// A sink for `config.url`, configured from the standard S3 environment variables. Fails
    /// (naming the field) on a bad URL or an incomplete environment; makes no request.
    pub fn from_env(config: &PublishConfig) -> Result<S3Sink, String> {
        let target = config.validate()?;
        // object_store retries transient failures (5xx, timeouts, refused connections) within
        // one attempt; the publisher's own backoff spans minutes of outage on top of it.
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        };
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(&target.bucket)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_retry(retry)
            .build()
            .map_err(|e| format!("publish: the S3 client cannot be configured: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("callrec-s3")
            .enable_all()
            .build()
            .map_err(|e| format!("publish: cannot start the S3 client's runtime: {e}"))?;
        Ok(S3Sink {
            store,
            runtime,
            url: format!("s3://{}", target.bucket),
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_bytes: DEFAULT_PART_BYTES,
        })
    }

    /// Uploads files larger than `threshold` bytes in parts of `part_bytes` (at least 5 MiB,
    /// S3's smallest part).
    pub fn with_multipart(mut self, threshold: u64, part_bytes: usize) -> S3Sink {
        self.multipart_threshold = threshold;
        self.part_bytes = part_bytes.max(5 << 20);
        self
    }

    /// The target of a configuration, for hosts that print where they publish.
    pub fn target(config: &PublishConfig) -> Result<PublishTarget, String> {
        config.validate()
    }

    async fn put_async(&self, upload: &Upload<'_>) -> Result<StoredObject, String> {
        let location = object_path(upload.key)?;
        let path: PathBuf = upload.path.to_path_buf();
        let read_error = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        let size = tokio::fs::metadata(&path).await.map_err(read_error)?.len();
        let mut attributes = Attributes::new();
        for (key, value) in upload.metadata {
            attributes.insert(
                Attribute::Metadata((*key).into()),
                AttributeValue::from(header_value(value)),
            );
        }
        if size <= self.multipart_threshold {
            let bytes = tokio::fs::read(&path).await.map_err(read_error)?;
            let checksum = hex(&Sha256::digest(&bytes));
            attributes.insert(
                Attribute::Metadata(CHECKSUM_KEY.into()),
                AttributeValue::from(checksum.clone()),
            );
            let sent = bytes.len() as u64;
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.store
                .put_opts(&location, PutPayload::from(bytes), options)
                .await
                .map_err(store_error)?;
            return Ok(StoredObject {
                size: sent,
                checksum: Some(checksum),
            });
        }
        // Large file: the checksum goes in the request that starts the upload, so hash first,
        // then stream the parts (never the whole file in memory).
        let checksum = {
            let mut file = tokio::fs::File::open(&path).await.map_err(read_error)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).await.map_err(read_error)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            hex(&hasher.finalize())
        };
        attributes.insert(
            Attribute::Metadata(CHECKSUM_KEY.into()),
            AttributeValue::from(checksum.clone()),
        );
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let upload = self
            .store
            .put_multipart_opts(&location, options)
            .await
            .map_err(store_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
        let mut file = tokio::fs::File::open(&path).await.map_err(read_error)?;
        let mut buf = vec![0u8; self.part_bytes];
        let mut sent = 0u64;
        let streamed: Result<(), String> = async {
            loop {
                let n = file.read(&mut buf).await.map_err(read_error)?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PART_CONCURRENCY)
                    .await
                    .map_err(store_error)?;
                writer.write(&buf[..n]);
                sent += n as u64;
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await.map_err(store_error)?;
            }
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        }
        Ok(StoredObject {
            size: sent,
            checksum: Some(checksum),
        })
    }

    async fn head_async(&self, key: &str) -> Result<Option<StoredObject>, String> {
        let location = object_path(key)?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.store.get_opts(&location, options).await {
            Ok(found) => Ok(Some(StoredObject {
                size: found.meta.size,
                checksum: found
                    .attributes
                    .get(&Attribute::Metadata(CHECKSUM_KEY.into()))
                    .map(|v| v.as_ref().to_string()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }
}

impl ObjectSink for S3Sink {
    fn put(&self, upload: &Upload<'_>) -> Result<StoredObject, String> {
        self.runtime.block_on(self.put_async(upload))
    }

    fn head(&self, key: &str) -> Result<Option<StoredObject>, String> {
        self.runtime.block_on(self.head_async(key))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// Starts an engine under `store_root`; with `config.publish` set, builds the S3 sink from the
/// environment and publishes through it. What every host calls instead of `Engine::new`.
pub fn start_engine(
    store_root: impl Into<PathBuf>,
    config: EngineConfig,
) -> Result<Engine, callrec::Error> {
    match &config.publish {
        None => Engine::new(store_root, config),
        Some(publish) => {
            let sink = S3Sink::from_env(publish).map_err(callrec::Error::Config)?;
            Engine::with_object_sink(store_root, config, Arc::new(sink))
        }
    }
}

fn object_path(key: &str) -> Result<ObjectPath, String> {
    ObjectPath::parse(key).map_err(|_| "publish: the object key is not a valid path".to_string())
}

/// A short cause for the host: what kind of failure, and for an HTTP answer its status and the
/// S3 error code (`403 Forbidden SignatureDoesNotMatch`). object_store's errors never carry a
/// credential; the request's URL and the server's full body are left out to keep it short.
fn store_error(e: object_store::Error) -> String {
    let kind = match &e {
        object_store::Error::NotFound { .. } => "not found",
        object_store::Error::PermissionDenied { .. } => "permission denied",
        object_store::Error::Unauthenticated { .. } => "unauthenticated",
        object_store::Error::Precondition { .. } => "precondition failed",
        _ => "request failed",
    };
    let mut chain = e.to_string();
    let mut innermost = chain.clone();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        innermost = text.clone();
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        cause = c.source();
    }
    let chain = chain.split_whitespace().collect::<Vec<_>>().join(" ");
    let status = chain
        .split_once("status code: ")
        .map(|(_, rest)| rest.split(':').next().unwrap_or("").trim().to_string());
    let code = chain
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string());
    match (status, code) {
        (Some(status), Some(code)) => format!("{kind}: HTTP {status} {code}"),
        (Some(status), None) => format!("{kind}: HTTP {status}"),
        // No HTTP answer: the innermost cause names it (refused, timed out, DNS).
        _ => format!(
            "{kind}: {}",
            innermost.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    }
}

/// A metadata value as an ASCII header value: printable ASCII except `%` passes, every other
/// byte is `%XX` (S3 metadata is ASCII on the wire; a user `id` may not be).
pub fn header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_ascii_and_reversible() {
        assert_eq!(header_value("call-7 #1"), "call-7 #1");
        assert_eq!(header_value("50%\n"), "50%25%0A");
        assert_eq!(header_value("é"), "%C3%A9");
    }

    #[test]
    fn sha256_is_hex() {
        let h = hex(&Sha256::digest(b"abc"));
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_bad_url_is_refused_before_any_request() {
        let e = S3Sink::from_env(&PublishConfig::new("s3://x")).unwrap_err();
        assert!(e.contains("bucket"), "{e}");
    }
}
