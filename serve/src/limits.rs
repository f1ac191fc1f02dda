//! The process's open-file limit: raised at start and turned into a call capacity the operator
//! can read in the log, and EMFILE recognised so that it is reported as what it is (a busy
//! server that ran out of descriptors is not "out of RTP ports").

use crate::config::ServeConfig;
use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors one call holds for its whole life: its RTP socket, the RTCP socket on port+1
/// (each record's port+1 is reserved for its RTCP, DESIGN §11), and the recording's file, which
/// the engine keeps open until the recording is finalized.
pub const DESCRIPTORS_PER_CALL: u64 = 3;

/// True for "too many open files", of this process (EMFILE) or of the system (ENFILE).
pub fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(Errno::MFILE.raw_os_error()) || code == Some(Errno::NFILE.raw_os_error())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the common default soft limit of 1024
/// would cap the default port range well below its size); returns the soft limit now in
/// force (`None`: unlimited).
pub fn raise_nofile() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
                Err(e) => {
                    tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit")
                }
            }
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Descriptors open in this process now (`None` where `/proc/self/fd` cannot be read).
pub fn open_descriptors() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1) as u64)
}

/// HTTP connections served at once: the configured limit, but at most a quarter of the
/// open-file limit, so that connections alone can never exhaust the descriptors calls need.
pub fn connection_limit(nofile: Option<u64>, configured: usize) -> usize {
    match nofile {
        Some(n) => configured.min((n / 4).max(1) as usize),
        None => configured,
    }
}

/// Concurrent calls the open-file limit allows: the descriptors left once those open now and
/// the HTTP connections' are set aside, [`DESCRIPTORS_PER_CALL`] each.
pub fn call_capacity(nofile: u64, open_now: u64, connections: u64) -> u64 {
    nofile.saturating_sub(open_now + connections) / DESCRIPTORS_PER_CALL
}

/// Logs the call capacity the open-file limit allows next to what the port range allows
/// (a warning when the limit is the smaller).
pub fn log_capacity(nofile: Option<u64>, config: &ServeConfig) {
    let (first, last) = config.rtp_ports;
    let ports = u64::from(last - first) + 1;
    let connections = connection_limit(nofile, config.http.max_connections) as u64;
    match (nofile, open_descriptors()) {
        (Some(n), Some(open)) => {
            let calls = call_capacity(n, open, connections);
            if calls < ports / 2 {
                tracing::warn!(nofile = n, open, http_connections = connections, calls, rtp_ports = ports, "the open-file limit allows fewer concurrent calls than the port range (raise the hard nofile limit)");
            } else {
                tracing::info!(
                    nofile = n,
                    open,
                    http_connections = connections,
                    calls,
                    "concurrent calls the open-file limit allows"
                );
            }
        }
        (n, _) => tracing::info!(nofile = ?n, http_connections = connections, "open-file limit"),
    }
}

/// True when a new call's descriptors fit under the open-file limit with the HTTP connections'
/// share kept free, so that a server full of calls can still accept the request that would
/// stop one. Checked before a call starts; an EMFILE while starting one is reported the same.
pub fn room_for_a_call(max_connections: usize) -> bool {
    let Some(nofile) = getrlimit(Resource::Nofile).current else {
        return true;
    };
    let Some(open) = open_descriptors() else {
        return true;
    };
    let connections = connection_limit(Some(nofile), max_connections) as u64;
    open + connections + DESCRIPTORS_PER_CALL <= nofile
}
