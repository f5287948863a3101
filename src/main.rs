fn main() -> std::process::ExitCode {
    dnd::cli::run()
}
