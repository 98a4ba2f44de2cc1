//! Standard output of the commands, through one door.

/// Writes to stdout, ignoring a closed pipe (`isobench validate x | head` must not panic).
/// SIGPIPE stays ignored, as Rust sets it, because the harness also writes to sockets.
pub fn out(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(text);
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::out(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use outln;
