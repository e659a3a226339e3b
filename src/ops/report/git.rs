//! What git holds for the fleet's files, read natively from `.git/index`
//! (rumor runs no external program but guestfish).
//!
//! The index lists every tracked path with the object id of its staged
//! content; the object id of a file is the SHA-1 of `blob <len>\0<bytes>`.
//! So a file whose bytes hash to another id than its index entry, or that
//! has no entry, is not committed. What this cannot see: a change staged
//! with `git add` but not committed (the index already holds it), and
//! content filters (autocrlf, LFS), which rumor's files do not use.
//! Repositories with SHA-256 object ids are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

/// The most an index may weigh: a fleet of thousands of devices has an
/// index of a few MiB.
const MAX_INDEX: u64 = 256 << 20;

/// A git repository's index.
pub(crate) struct Index {
    /// The repository's work tree root.
    pub root: PathBuf,
    /// Path (relative to the root, `/`-separated) to the staged object id.
    entries: BTreeMap<String, [u8; 20]>,
}

/// How a fleet file stands against git.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// As staged (committed, as far as the index tells).
    Clean,
    /// Tracked, with other bytes on disk.
    Modified,
    /// Not tracked.
    Untracked,
}

/// The git object id of a file's bytes.
pub(crate) fn blob_id(content: &[u8]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", content.len()).as_bytes());
    hasher.update(content);
    hasher.finalize().into()
}

/// Finds the repository holding `dir` (walking up) and reads its index;
/// `Ok(None)` when there is none.
pub(crate) fn open(dir: &Path) -> Result<Option<Index>, String> {
    let start = std::fs::canonicalize(dir)
        .map_err(|e| format!("{}: {}", dir.display(), crate::error::io_reason(&e)))?;
    let mut at = Some(start.as_path());
    while let Some(dir) = at {
        let dot = dir.join(".git");
        if dot.is_dir() {
            return read(dir, &dot).map(Some);
        }
        if dot.is_file() {
            // A linked worktree or submodule: `gitdir: <path>`.
            let text = crate::fsutil::read_regular(&dot, 4096)
                .map_err(|e| format!("{}: {}", dot.display(), e.reason()))?;
            let text = String::from_utf8_lossy(&text);
            let Some(target) = text.trim().strip_prefix("gitdir:") else {
                return Err(format!("{}: is not a gitdir link", dot.display()));
            };
            let target = dir.join(target.trim());
            return read(dir, &target).map(Some);
        }
        at = dir.parent();
    }
    Ok(None)
}

fn read(root: &Path, gitdir: &Path) -> Result<Index, String> {
    let config = gitdir.join("config");
    if let Ok(text) = crate::fsutil::read_regular(&config, 1 << 20) {
        let text = String::from_utf8_lossy(&text).to_ascii_lowercase();
        if text.lines().any(|l| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l == "objectformat=sha256"
        }) {
            return Err(format!(
                "{}: a SHA-256 repository; rumor reads SHA-1 indexes only",
                gitdir.display()
            ));
        }
    }
    let file = gitdir.join("index");
    let bytes = match crate::fsutil::read_regular(&file, MAX_INDEX) {
        Ok(b) => b,
        // A repository where nothing was ever added has no index yet.
        Err(crate::fsutil::ReadError::Missing) => Vec::new(),
        Err(e) => return Err(format!("{}: {}", file.display(), e.reason())),
    };
    let entries = if bytes.is_empty() {
        BTreeMap::new()
    } else {
        parse(&bytes).map_err(|why| format!("{}: {why}", file.display()))?
    };
    Ok(Index {
        root: root.to_path_buf(),
        entries,
    })
}

fn be32(bytes: &[u8], at: usize) -> Result<u32, &'static str> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or("is truncated")
}

/// Parses the entries of an index of version 2, 3 or 4 (stage 0 only: a
/// path in a merge conflict has no single staged content).
fn parse(bytes: &[u8]) -> Result<BTreeMap<String, [u8; 20]>, &'static str> {
    if bytes.get(..4) != Some(b"DIRC") {
        return Err("is not a git index");
    }
    let version = be32(bytes, 4)?;
    if !(2..=4).contains(&version) {
        return Err("has an index version rumor does not read");
    }
    let count = be32(bytes, 8)? as usize;
    let mut at = 12;
    let mut out = BTreeMap::new();
    let mut previous: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = at;
        let oid: [u8; 20] = bytes
            .get(at + 40..at + 60)
            .and_then(|b| b.try_into().ok())
            .ok_or("is truncated")?;
        let flags = bytes
            .get(at + 60..at + 62)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or("is truncated")?;
        at += 62;
        if version >= 3 && flags & 0x4000 != 0 {
            at += 2;
        }
        let name = if version == 4 {
            // Prefix compression: drop N bytes of the previous name, then
            // a NUL-terminated suffix.
            let mut strip: usize = 0;
            loop {
                let c = *bytes.get(at).ok_or("is truncated")?;
                at += 1;
                strip = strip
                    .checked_shl(7)
                    .and_then(|s| s.checked_add(usize::from(c & 0x7f)))
                    .ok_or("is malformed")?;
                if c & 0x80 == 0 {
                    break;
                }
                strip = strip.checked_add(1).ok_or("is malformed")?;
            }
            let keep = previous.len().checked_sub(strip).ok_or("is malformed")?;
            let end = bytes[at..]
                .iter()
                .position(|b| *b == 0)
                .ok_or("is truncated")?;
            let mut name = previous[..keep].to_vec();
            name.extend_from_slice(&bytes[at..at + end]);
            at += end + 1;
            name
        } else {
            let end = bytes
                .get(at..)
                .and_then(|rest| rest.iter().position(|b| *b == 0))
                .ok_or("is truncated")?;
            let name = bytes[at..at + end].to_vec();
            // Entries are padded with 1 to 8 NULs to a multiple of 8.
            let len = at + end - start;
            at = start + (len + 8) / 8 * 8;
            name
        };
        if (flags >> 12) & 0x3 == 0 {
            if let Ok(text) = std::str::from_utf8(&name) {
                out.insert(text.to_owned(), oid);
            }
        }
        previous = name;
    }
    Ok(out)
}

impl Index {
    /// The path of `file` (absolute) relative to the repository, as the
    /// index spells it.
    fn key(&self, file: &Path) -> Option<String> {
        let file = std::fs::canonicalize(file)
            .ok()
            .or_else(|| Some(file.to_path_buf()))?;
        let rel = file.strip_prefix(&self.root).ok()?;
        Some(rel.to_string_lossy().replace('\\', "/"))
    }

    /// How `file` (absolute, existing) with `content` stands against git.
    pub(crate) fn state(&self, file: &Path, content: &[u8]) -> State {
        match self.key(file).and_then(|k| self.entries.get(&k)) {
            None => State::Untracked,
            Some(oid) if *oid == blob_id(content) => State::Clean,
            Some(_) => State::Modified,
        }
    }

    /// Whether git's index holds exactly `content` for `file`.
    pub(crate) fn holds(&self, file: &Path, content: &[u8]) -> bool {
        self.state(file, content) == State::Clean
    }

    /// Whether git tracks `file` at all (it may be deleted on disk).
    pub(crate) fn tracks(&self, file: &Path) -> bool {
        self.key(file)
            .is_some_and(|k| self.entries.contains_key(&k))
    }

    /// The tracked paths under `dir` (absolute), for files deleted on disk.
    pub(crate) fn tracked_under(&self, dir: &Path) -> Vec<PathBuf> {
        let Some(prefix) = self.key(dir) else {
            return Vec::new();
        };
        let prefix = if prefix.is_empty() {
            prefix
        } else {
            format!("{prefix}/")
        };
        self.entries
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .map(|k| self.root.join(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            hex::encode(blob_id(b"hello\n")),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn hostile_indexes_are_errors() {
        for bad in [
            &b"DIRC"[..],
            b"DIRC\0\0\0\x09\0\0\0\x01",
            b"DIRC\0\0\0\x02\0\0\0\x05",
            b"XXXX\0\0\0\x02\0\0\0\0",
        ] {
            assert!(parse(bad).is_err());
        }
        assert!(parse(b"DIRC\0\0\0\x02\0\0\0\0").unwrap().is_empty());
    }
}
