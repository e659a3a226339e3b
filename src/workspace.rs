//! The workspace: the named files a spec run reads and writes.
//!
//! It lives in memory. Contents are zeroized when dropped, and nothing is
//! written to disk unless the caller materialises it (`--stay --keep`).

use indexmap::IndexMap;
use zeroize::Zeroizing;

/// Who may read a file once it is materialised: private files are 0600,
/// public ones (ids, certificates, public keys) 0644.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Mode 0600.
    Private,
    /// Mode 0644.
    Public,
}

impl Visibility {
    /// The Unix mode bits for a materialised file.
    pub fn mode(self) -> u32 {
        match self {
            Visibility::Private => 0o600,
            Visibility::Public => 0o644,
        }
    }
}

/// One workspace file. Its content is secret until proven otherwise, so it
/// has no `Debug` that would print it.
#[derive(Clone)]
pub struct File {
    /// The bytes, wiped on drop.
    pub content: Zeroizing<Vec<u8>>,
    /// The mode it gets on disk.
    pub visibility: Visibility,
}

impl File {
    /// A file from bytes.
    pub fn new(content: impl Into<Vec<u8>>, visibility: Visibility) -> File {
        File {
            content: Zeroizing::new(content.into()),
            visibility,
        }
    }

    /// The content as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.content).ok()
    }
}

/// The named files of one run, in the order they were first added.
///
/// Each file is either trusted (made in this run, or read from a store,
/// whose access control or signature vouches for it) or untrusted (read
/// from disk, where anyone who can write the fleet's repository could have
/// put it). Nothing secret is derived from an untrusted file's hidden
/// parts: see `generate::sops`.
#[derive(Default, Clone)]
pub struct Workspace {
    files: IndexMap<String, File>,
    untrusted: std::collections::HashSet<String>,
}

impl Workspace {
    /// An empty workspace.
    pub fn new() -> Workspace {
        Workspace::default()
    }

    /// The file called `name`.
    pub fn get(&self, name: &str) -> Option<&File> {
        self.files.get(name)
    }

    /// The file called `name` as text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.files.get(name).and_then(File::text)
    }

    /// Whether a file called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// Adds or replaces a trusted file. The name must have passed
    /// [`check_name`].
    pub fn insert(&mut self, name: impl Into<String>, file: File) {
        let name = name.into();
        self.untrusted.remove(&name);
        self.files.insert(name, file);
    }

    /// Adds or replaces a file read from disk.
    pub fn insert_untrusted(&mut self, name: impl Into<String>, file: File) {
        let name = name.into();
        self.untrusted.insert(name.clone());
        self.files.insert(name, file);
    }

    /// Whether `name` exists and came from this run or a store.
    pub fn is_trusted(&self, name: &str) -> bool {
        self.files.contains_key(name) && !self.untrusted.contains(name)
    }

    /// Marks every file untrusted: `--reencrypt` reuses nothing earlier.
    pub fn distrust_all(&mut self) {
        self.untrusted.extend(self.files.keys().cloned());
    }

    /// Removes a file.
    pub fn remove(&mut self, name: &str) -> Option<File> {
        self.untrusted.remove(name);
        self.files.shift_remove(name)
    }

    /// All files, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &File)> {
        self.files.iter().map(|(name, file)| (name.as_str(), file))
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Checks that `name` is a plain file name inside the workspace: not empty,
/// not absolute, no directory separators, no `.` or `..`, no control or
/// bidirectional characters ([`crate::names`]). Workspace names become
/// Vault keys and file names, so a separator would let a spec write outside
/// its place.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.starts_with('/') {
        return Err("is an absolute path; use a plain file name");
    }
    if name == "." || name == ".." || name.split(['/', '\\']).any(|part| part == "..") {
        return Err("contains '..'; use a plain file name");
    }
    if name.contains(['/', '\\']) {
        return Err("contains a path separator; use a plain file name");
    }
    crate::names::check(name)?;
    if name.len() > 255 {
        return Err("is longer than 255 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["age.txt", "sops.yaml.pub", "id-2", ".hidden"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "..",
            ".",
            "../x",
            "a/b",
            "a\\b",
            "a\nb",
            "a\0b",
            "key\u{202e}txt.age",
            "\u{2066}x",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn order_is_kept() {
        let mut ws = Workspace::new();
        ws.insert("b", File::new("1", Visibility::Private));
        ws.insert("a", File::new("2", Visibility::Public));
        ws.insert("b", File::new("3", Visibility::Private));
        let names: Vec<_> = ws.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(ws.text("b"), Some("3"));
    }
}
