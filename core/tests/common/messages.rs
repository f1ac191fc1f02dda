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
    // No window of 60 input characters appears verbatim in the message.
    let chars: Vec<char> = input.chars().collect();
    if chars.len() >= 60 {
        for start in (0..=chars.len() - 60).step_by(20) {
            let window: String = chars[start..start + 60].iter().collect();
            assert!(
                !message.contains(&window),
                "message echoes the input: {message:?}"
            );
        }
    }
}
