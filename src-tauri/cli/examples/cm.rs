fn main() -> std::process::ExitCode {
    comfy_cli::run_cli().unwrap_or(std::process::ExitCode::SUCCESS)
}
