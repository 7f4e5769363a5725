//! `cargo xtask deps`: no dependency is declared that nothing uses.
//!
//! `cargo machete --with-metadata` finds a member's unused dependencies
//! (normal, dev and build; it reads the sources, so it works offline on
//! stable). It does not look at `[workspace.dependencies]`, so an entry
//! there that no member inherits any more is caught here.

use crate::cmd::{Result, run, workspace_root};
use crate::tools::ensure_cargo_machete;

/// Both checks; the first unused dependency found fails CI.
pub(crate) fn check() -> Result {
    ensure_cargo_machete()?;
    // The binary itself: run as `cargo machete` from inside `cargo run`, it
    // takes its own name for a folder to analyse.
    run("cargo-machete", &["--with-metadata"])?;
    let root = workspace_root();
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let manifest = read(&root.join("Cargo.toml"))?;
    let mut members = Vec::new();
    for pattern in member_manifests(&manifest) {
        for folder in expand(&root, &pattern)? {
            members.push(read(&folder.join("Cargo.toml"))?);
        }
    }
    let unused: Vec<String> = workspace_dependencies(&manifest)
        .into_iter()
        .filter(|name| !members.iter().any(|member| inherits(member, name)))
        .collect();
    if unused.is_empty() {
        println!("deps: every [workspace.dependencies] entry is inherited by a member");
        Ok(())
    } else {
        Err(format!(
            "[workspace.dependencies] declares what no member uses: {}",
            unused.join(", ")
        ))
    }
}

/// The member folders of the root manifest (`members = [...]`, no globs).
fn member_manifests(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("members = [") else {
        return Vec::new();
    };
    let list = &manifest[start + "members = [".len()..];
    let list = &list[..list.find(']').unwrap_or(list.len())];
    list.split(',')
        .map(|item| item.trim().trim_matches('"').to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The folders a member pattern names: itself, or with a final `/*`, every
/// folder in it that holds a `Cargo.toml`.
fn expand(root: &std::path::Path, pattern: &str) -> Result<Vec<std::path::PathBuf>> {
    let Some(parent) = pattern.strip_suffix("/*") else {
        return Ok(vec![root.join(pattern)]);
    };
    let entries =
        std::fs::read_dir(root.join(parent)).map_err(|e| format!("cannot list {parent}: {e}"))?;
    let mut folders: Vec<_> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    folders.sort();
    Ok(folders)
}

/// The names declared in `[workspace.dependencies]`.
fn workspace_dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[workspace.dependencies]";
            continue;
        }
        if !inside || line.starts_with('#') {
            continue;
        }
        if let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '"') {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Whether a member manifest inherits `name` from the workspace.
fn inherits(member: &str, name: &str) -> bool {
    member.lines().map(str::trim).any(|line| {
        line.starts_with(&format!("{name}.workspace = true"))
            || (line.starts_with(&format!("{name} = {{")) && line.contains("workspace = true"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "[workspace]\nmembers = [\n    \"crates/*\",\n    \"xtask\",\n]\n\n\
        [workspace.dependencies]\n# comment\nfred = { version = \"10\", features = [\n    \"i-std\",\n] }\n\
        tokio = \"1\"\nunused-thing = \"2\"\n\n[profile.release]\nlto = true\n";

    #[test]
    fn members_and_workspace_dependencies_are_read_from_the_root_manifest() {
        assert_eq!(member_manifests(ROOT), vec!["crates/*", "xtask"]);
        assert_eq!(
            workspace_dependencies(ROOT),
            vec!["fred", "tokio", "unused-thing"]
        );
    }

    #[test]
    fn a_dependency_is_inherited_in_either_spelling_and_not_by_a_prefix() {
        let member = "[dependencies]\nfred.workspace = true\ntokio = { workspace = true, features = [\"fs\"] }\n";
        assert!(inherits(member, "fred"));
        assert!(inherits(member, "tokio"));
        assert!(!inherits(member, "unused-thing"));
        assert!(!inherits(member, "fre"));
    }
}
