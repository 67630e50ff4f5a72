//! `/api/v1/download/{downloadId}`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/download/{downloadId}")
}
