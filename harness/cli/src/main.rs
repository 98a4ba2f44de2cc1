//! `isobench`: parse, run, map the outcome to a documented exit code.

fn main() {
    std::process::exit(isobench::main_entry());
}
