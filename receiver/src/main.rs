//! The `gort` binary: everything is in the library's `cli` room.

fn main() -> std::process::ExitCode {
    gort::cli::main()
}
