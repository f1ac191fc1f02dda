//! The shape every export shares, as macros in the rustls-ffi manner: a panic boundary, and
//! argument checks that `return` the right `callrec_result` early. Each `unsafe` block in them
//! holds exactly one operation, justified by the export's documented contract.

/// What an export returns when its body panicked.
pub(crate) trait PanicOrDefault {
    fn on_panic() -> Self;
}

impl PanicOrDefault for crate::callrec_result {
    fn on_panic() -> Self {
        crate::callrec_result::Panic
    }
}

impl PanicOrDefault for () {
    fn on_panic() -> Self {}
}

/// Runs the body inside `catch_unwind`: a panic becomes the return type's `on_panic` value
/// (`CALLREC_RESULT_PANIC`), never an unwind into C.
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => <_ as $crate::macros::PanicOrDefault>::on_panic(),
        }
    };
}

/// Returns `CALLREC_RESULT_NULL_PARAMETER` if any pointer is NULL.
macro_rules! try_non_null {
    ($($p:expr),+ $(,)?) => {
        $(if $p.is_null() { return $crate::callrec_result::NullParameter; })+
    };
}

/// Unwraps a `Result<T, E>` whose error converts into `callrec_result`, or returns the error.
macro_rules! try_ok {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $crate::callrec_result::from(e),
        }
    };
}

/// The bytes at `$ptr..$ptr+$len` (`&[u8]`); NULL is allowed (as empty) only when `$len` is 0.
macro_rules! try_slice {
    ($ptr:expr, $len:expr) => {{
        let (ptr, len): (*const u8, usize) = ($ptr.cast::<u8>(), $len);
        if len == 0 {
            &[][..]
        } else if ptr.is_null() {
            return $crate::callrec_result::NullParameter;
        } else {
            // SAFETY: the export's contract: `ptr` is valid for reads of `len` bytes for the
            // whole call, and C does not write to it meanwhile.
            unsafe { ::std::slice::from_raw_parts(ptr, len) }
        }
    }};
}

/// The writable bytes at `$ptr..$ptr+$len` (`&mut [u8]`); NULL is allowed (as empty) only when
/// `$len` is 0.
macro_rules! try_slice_mut {
    ($ptr:expr, $len:expr) => {{
        let (ptr, len): (*mut u8, usize) = ($ptr.cast::<u8>(), $len);
        if len == 0 {
            &mut [][..]
        } else if ptr.is_null() {
            return $crate::callrec_result::NullParameter;
        } else {
            // SAFETY: the export's contract: `ptr` is valid for writes of `len` bytes for the
            // whole call, and nothing else accesses it meanwhile.
            unsafe { ::std::slice::from_raw_parts_mut(ptr, len) }
        }
    }};
}

/// The UTF-8 string at `$ptr..$ptr+$len` (`&str`), or `CALLREC_RESULT_INVALID_UTF8`.
macro_rules! try_str {
    ($ptr:expr, $len:expr) => {
        match ::std::str::from_utf8(try_slice!($ptr, $len)) {
            Ok(s) => s,
            Err(_) => return $crate::callrec_result::InvalidUtf8,
        }
    };
}

/// The engine behind a handle, borrowed shared for the rest of the call.
macro_rules! try_engine {
    ($h:expr) => {
        try_ok!($crate::ENGINES.shared($h.addr()))
    };
}

/// The recorder behind a handle, borrowed exclusively for the rest of the call (lock-free).
macro_rules! try_recorder {
    ($h:expr) => {
        try_ok!($crate::RECORDERS.exclusive($h.addr()))
    };
}

/// Checks that an output pointer is not NULL (before any work, so a NULL output has no effect).
macro_rules! try_out {
    ($($p:expr),+ $(,)?) => { try_non_null!($($p),+) };
}

/// Writes `$value` to the (checked) output pointer `$out`.
macro_rules! write_out {
    ($out:expr, $value:expr) => {{
        let value = $value;
        // SAFETY: the export's contract: `$out` (checked non-NULL by `try_out!`) is valid for a
        // write of its type.
        unsafe { $out.write(value) }
    }};
}
