//! `/api/v1/admin/prune`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/admin/prune")
}
