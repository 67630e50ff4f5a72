//! `/api/v1/auth/sessions`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/auth/sessions")
}
