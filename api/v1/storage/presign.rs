//! `/api/v1/storage/presign`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/storage/presign")
}
