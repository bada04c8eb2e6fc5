//! The official JavaScript client the compatibility tests drive the server with,
//! installed with `npm ci` into a directory under the target directory from
//! `tests/compat/package.json` and its lock file, once per change of either.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::skip_unless_ci;

/// The `node_modules` directory holding the client, installed on first use; `None`
/// (the test is then skipped, unless under `CI=true`) when `node` or `npm` is missing.
pub fn node_modules() -> Option<&'static Path> {
    static MODULES: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULES
        .get_or_init(|| {
            for tool in ["node", "npm"] {
                if !Command::new(tool)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
                {
                    skip_unless_ci(&format!("`{tool}` is not installed"));
                    return None;
                }
            }
            let compat = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-node");
            let marker = dir.join("installed-packages.json");
            let wanted = ["package.json", "package-lock.json"]
                .map(|name| std::fs::read_to_string(compat.join(name)).expect(name))
                .concat();
            if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).expect("node directory");
                for name in ["package.json", "package-lock.json"] {
                    std::fs::copy(compat.join(name), dir.join(name)).expect(name);
                }
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir)
                    .status()
                    .expect("run npm ci");
                assert!(status.success(), "npm ci failed in {}", dir.display());
                std::fs::write(&marker, wanted).expect("marker");
            }
            Some(dir.join("node_modules"))
        })
        .as_deref()
}
