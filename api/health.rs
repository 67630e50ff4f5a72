//! `GET /api/health`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/health")
}
