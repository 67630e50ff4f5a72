//! `/api/v1/updater/{product}/{target}/latest.json`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/updater/{product}/{target}/latest.json")
}
