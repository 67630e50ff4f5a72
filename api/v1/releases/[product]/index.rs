//! `/api/v1/releases/{product}`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/releases/{product}")
}
