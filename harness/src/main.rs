//! The `bootrig` binary: a thin shell over the library's CLI.

fn main() -> std::process::ExitCode {
    bootrig::cli::main()
}
