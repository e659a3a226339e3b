//! Imports and exports: the engine's only contact with stores and with
//! paths outside the workspace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{entry_error, store_error, LazyStore, Options, Outcome};
use crate::error::{Error, Kind};
use crate::fsutil;
use crate::generate::{self, Args};
use crate::spec::{Entry, Kind as EntryKind};
use crate::store::{Data, Store, StoreError, Versioned};
use crate::transfer::{Exporter, Importer};
use crate::workspace::{check_name, File, Visibility, Workspace};

/// Reads a `copy` source. A plain relative path stays inside `base` (no
/// symlink out of it); with `confined` (fleet commands) nothing else is
/// allowed, while a spec run may name an absolute or `..` path on purpose.
/// Either way only a regular file within the size limit is read.
fn read_copy(base: &Path, path: &str, confined: bool) -> Result<Vec<u8>, fsutil::ReadError> {
    let p = Path::new(path);
    if fsutil::is_plain_relative(p) {
        fsutil::read_beneath(base, p, fsutil::MAX_READ)
    } else if confined {
        Err(fsutil::ReadError::Refused(format!(
            "is outside {}; fleet specs read only inside the fleet",
            base.display()
        )))
    } else {
        fsutil::read_regular(&resolve(base, path), fsutil::MAX_READ)
    }
}

/// Writes a `copy` target with the same rule as [`read_copy`].
fn write_copy(
    base: &Path,
    path: &str,
    content: &[u8],
    mode: u32,
    confined: bool,
) -> Result<bool, fsutil::ReadError> {
    let p = Path::new(path);
    if fsutil::is_plain_relative(p) {
        return fsutil::write_beneath(base, p, content, mode);
    }
    if confined {
        return Err(fsutil::ReadError::Refused(format!(
            "is outside {}; fleet specs write only inside the fleet",
            base.display()
        )));
    }
    let to = resolve(base, path);
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fsutil::ReadError::Io)?;
    }
    fsutil::write_atomic(&to, content, mode).map_err(fsutil::ReadError::Io)
}

/// Whether writing `content` with `mode` to `path` would change the file:
/// it is missing, or holds other bytes or another mode. Reads only.
fn would_write(base: &Path, path: &str, content: &[u8], mode: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let p = Path::new(path);
    if !fsutil::is_plain_relative(p) {
        return true;
    }
    match fsutil::read_beneath(base, p, fsutil::MAX_READ) {
        Ok(existing) => {
            let same_mode = std::fs::symlink_metadata(base.join(p))
                .is_ok_and(|m| m.permissions().mode() & 0o7777 == mode);
            existing != content || !same_mode
        }
        Err(_) => true,
    }
}

/// A store entry as an import (or an earlier export) of this run saw it.
pub(super) struct Seen {
    version: u64,
    data: Option<Data>,
}

pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn open_store<'s>(entry: &Entry, store: &'s LazyStore) -> Result<&'s dyn Store, Error> {
    store.get().map_err(|e| entry_error(entry, e, Kind::Store))
}

fn current(path: &str) -> String {
    format!("{}/current", path.trim_matches('/'))
}

/// The store path a store import reads (and [`prefetch`] reads for it):
/// the `current` entry under its `path` argument.
fn import_path(args: &Args) -> Result<String, generate::ArgError> {
    args.str("path").map(current)
}

/// What the store held at the paths a spec's imports name, read before
/// the first import: all at once, and each path once (a shared Wi-Fi's
/// four files are one path). An import takes its answer from here
/// instead of a round trip of its own, one after another; a failed read
/// is the error of the first import that names its path, as it would
/// have been without this.
#[derive(Default)]
pub(super) struct Prefetched(HashMap<String, Result<Option<(u64, Data)>, StoreError>>);

impl Prefetched {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What was read at `path`, if it was.
    fn read(&mut self, path: &str) -> Option<Result<Option<Versioned>, StoreError>> {
        let versioned = |(version, data)| Versioned {
            data,
            version,
            provenance: None,
        };
        match self.0.get(path)? {
            Ok(read) => Some(Ok(read.clone().map(versioned))),
            // An error stops the run at this import: nothing reads it again.
            Err(_) => self
                .0
                .remove(path)
                .map(|r| r.map(|read| read.map(versioned))),
        }
    }
}

/// How many reads [`prefetch`] has in flight at once.
const PREFETCH_THREADS: usize = 8;

/// Reads the store paths of `imports` at once, when two or more of them
/// need a request (a single one gains nothing; a path the store holds in
/// memory, such as a fleet run's shared set after its first read, needs
/// none).
pub(super) fn prefetch(imports: &[Entry], store: &LazyStore) -> Prefetched {
    let named: Vec<String> = imports
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Importer(i) if i.reads_store()))
        .filter_map(|e| import_path(&Args::new(&e.arguments)).ok())
        .collect();
    if named.len() < 2 {
        return Prefetched::default();
    }
    let Ok(store) = store.get() else {
        return Prefetched::default();
    };
    let mut paths: Vec<String> = named.into_iter().filter(|p| !store.holds(p)).collect();
    paths.sort();
    paths.dedup();
    if paths.len() < 2 {
        return Prefetched::default();
    }
    let reads = crate::pool::map(&paths, PREFETCH_THREADS, |path| {
        store
            .read(path)
            .map(|read| read.map(|v| (v.version, v.data)))
    });
    // A read lost to a poisoned lock is simply read again by its import.
    Prefetched(
        paths
            .into_iter()
            .zip(reads)
            .filter_map(|(path, read)| Some((path, read?)))
            .collect(),
    )
}

pub(super) fn import(
    entry: &Entry,
    ws: &mut Workspace,
    store: &LazyStore,
    options: &Options,
    seen: &mut HashMap<String, Seen>,
    prefetched: &mut Prefetched,
) -> Result<(), Error> {
    let args = Args::new(&entry.arguments);
    let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
    let allow_fail = args.bool_or("allow_fail", false).map_err(input)?;
    let EntryKind::Importer(importer) = entry.kind else {
        return Err(entry_error(entry, "is not an import", Kind::Input));
    };
    match importer {
        Importer::Copy => {
            let from = args.str("from").map_err(input)?;
            let to = args.name("to").map_err(input)?;
            match read_copy(&options.base_dir, from, options.confined) {
                // A file from disk is the caller's (or a repository
                // writer's), not rumor's: it is marked so that nothing
                // secret is derived from it unchecked (see generate::sops).
                Ok(bytes) => ws.insert_untrusted(
                    to,
                    File {
                        content: Zeroizing::new(bytes),
                        visibility: Visibility::Private,
                    },
                ),
                Err(fsutil::ReadError::Missing) if allow_fail => {}
                Err(e @ fsutil::ReadError::Refused(_)) => {
                    return Err(entry_error(
                        entry,
                        format!(
                            "argument \"from\": {} {}",
                            resolve(&options.base_dir, from).display(),
                            e.reason()
                        ),
                        Kind::Input,
                    ))
                }
                Err(e) => {
                    return Err(entry_error(
                        entry,
                        format!(
                            "cannot read {}: {}",
                            resolve(&options.base_dir, from).display(),
                            e.reason()
                        ),
                        Kind::Io,
                    ))
                }
            }
        }
        Importer::Vault | Importer::VaultFile => {
            let path = import_path(&args).map_err(input)?;
            let store = open_store(entry, store)?;
            let found = match prefetched.read(&path) {
                Some(read) => read,
                None => store.read(&path),
            }
            .map_err(|e| store_error(entry, e))?;
            seen.insert(
                path.clone(),
                Seen {
                    version: found.as_ref().map(|v| v.version).unwrap_or(0),
                    data: found.as_ref().map(|v| v.data.clone()),
                },
            );
            let Some(found) = found else {
                if allow_fail {
                    return Ok(());
                }
                return Err(entry_error(
                    entry,
                    format!(
                        "nothing at \"{path}\" in {}; set allow_fail = true if that is expected",
                        store.describe()
                    ),
                    Kind::Store,
                ));
            };
            if importer == Importer::Vault {
                for (key, value) in &found.data {
                    check_name(key).map_err(|why| {
                        entry_error(
                            entry,
                            format!("\"{path}\" holds key \"{key}\", which {why}"),
                            Kind::Input,
                        )
                    })?;
                    ws.insert(
                        key.clone(),
                        File::new(restore_newline(value), Visibility::Private),
                    );
                }
            } else {
                let file = args.name("file").map_err(input)?;
                match found.data.get(file) {
                    Some(value) => {
                        ws.insert(file, File::new(restore_newline(value), Visibility::Private))
                    }
                    None if allow_fail => {}
                    None => {
                        return Err(entry_error(
                            entry,
                            format!("\"{path}\" has no key \"{file}\""),
                            Kind::Store,
                        ))
                    }
                }
            }
        }
    }
    if options.verbose {
        eprintln!("rumor: {}: imported", entry.label());
    }
    Ok(())
}

/// Stores keep values trimmed, as the original did. A PEM or OpenSSH
/// block gets its final newline back on import: OpenSSH refuses a private
/// key file without one. Exports trim it again, so runs stay idempotent.
fn restore_newline(value: &str) -> Vec<u8> {
    let mut bytes = value.as_bytes().to_vec();
    if value.starts_with("-----BEGIN ") && value.ends_with("-----") {
        bytes.push(b'\n');
    }
    bytes
}

/// A workspace file's text, trimmed, as the original stored values.
fn trimmed(entry: &Entry, ws: &Workspace, name: &str) -> Result<Zeroizing<String>, Error> {
    let file = ws.get(name).ok_or_else(|| {
        entry_error(
            entry,
            format!("\"{name}\" is not in the workspace"),
            Kind::Input,
        )
    })?;
    let text = file.text().ok_or_else(|| {
        entry_error(
            entry,
            format!("\"{name}\" is not UTF-8 text, so it cannot go into a store"),
            Kind::Input,
        )
    })?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn same_data(a: &Data, b: &Data) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).map(|w| w.as_str() == v.as_str()).unwrap_or(false))
}

/// Writes the timestamped copy `<base>/<YYYYmmddHHMMSS>` of a new version.
/// Two versions written in one second would share a stamp and the second
/// would erase the first from the history, so each copy is created only
/// where none exists (check-and-set 0), taking the next free second.
fn write_history(
    store: &dyn Store,
    base: &str,
    data: &Data,
    options: &Options,
) -> Result<String, crate::store::StoreError> {
    let now = options.now;
    let provenance = &options.provenance;
    let mut at = now;
    loop {
        let history = format!("{base}/{}", stamp(at));
        match store.write_with(&history, data, Some(0), provenance) {
            Ok(()) => return Ok(history),
            // Taken within the last minute: try the next second; beyond
            // that something else is wrong, and overwriting is the
            // original's behaviour.
            Err(crate::store::StoreError::Conflict { .. })
                if at - now < time::Duration::minutes(1) =>
            {
                at += time::Duration::seconds(1)
            }
            Err(crate::store::StoreError::Conflict { .. }) => {
                return store
                    .write_with(&history, data, None, provenance)
                    .map(|()| history)
            }
            Err(e) => return Err(e),
        }
    }
}

fn stamp(now: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day][hour][minute][second]");
    now.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

pub(super) fn export(
    entry: &Entry,
    ws: &Workspace,
    store: &LazyStore,
    options: &Options,
    seen: &mut HashMap<String, Seen>,
    outcome: &mut Outcome,
) -> Result<(), Error> {
    let args = Args::new(&entry.arguments);
    let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
    let EntryKind::Exporter(exporter) = entry.kind else {
        return Err(entry_error(entry, "is not an export", Kind::Input));
    };
    match exporter {
        Exporter::Copy => {
            let from = args.name("from").map_err(input)?;
            let to_arg = args.str("to").map_err(input)?;
            let to = resolve(&options.base_dir, to_arg);
            let file = ws.get(from).ok_or_else(|| {
                entry_error(
                    entry,
                    format!("\"{from}\" is not in the workspace"),
                    Kind::Input,
                )
            })?;
            if options.record {
                if would_write(
                    &options.base_dir,
                    to_arg,
                    &file.content,
                    file.visibility.mode(),
                ) {
                    outcome.files_written.push(to);
                }
                return Ok(());
            }
            let wrote = write_copy(
                &options.base_dir,
                to_arg,
                &file.content,
                file.visibility.mode(),
                options.confined,
            )
            .map_err(|e| match e {
                fsutil::ReadError::Refused(why) => entry_error(
                    entry,
                    format!("argument \"to\": {} {why}", to.display()),
                    Kind::Input,
                ),
                e => entry_error(
                    entry,
                    format!("cannot write {}: {}", to.display(), e.reason()),
                    Kind::Io,
                ),
            })?;
            if wrote {
                outcome.files_written.push(to);
            }
        }
        Exporter::Vault | Exporter::VaultFile => {
            let base = args
                .str("path")
                .map_err(input)?
                .trim_matches('/')
                .to_owned();
            let path = current(&base);
            let store = open_store(entry, store)?;
            // Check-and-set against what the import saw: a concurrent
            // writer in between makes this run fail instead of clobbering.
            let (cas, existing) = match seen.get(&path) {
                Some(s) => (s.version, s.data.clone()),
                None => {
                    let found = store.read(&path).map_err(|e| store_error(entry, e))?;
                    (
                        found.as_ref().map(|v| v.version).unwrap_or(0),
                        found.map(|v| v.data),
                    )
                }
            };
            let mut data: Data = existing.unwrap_or_default();
            let old = data.clone();
            if exporter == Exporter::Vault {
                data = Data::new();
                let names: Vec<String> = match args.opt_str_list("files").map_err(input)? {
                    Some(files) => files.into_iter().map(str::to_owned).collect(),
                    None => ws.iter().map(|(n, _)| n.to_owned()).collect(),
                };
                for name in names {
                    let value = trimmed(entry, ws, &name)?;
                    data.insert(name, value);
                }
            } else {
                let file = args.name("file").map_err(input)?;
                let value = trimmed(entry, ws, file)?;
                data.insert(file.to_owned(), value);
            }
            if same_data(&old, &data) {
                return Ok(());
            }
            if options.record {
                seen.insert(
                    path.clone(),
                    Seen {
                        version: cas + 1,
                        data: Some(data.clone()),
                    },
                );
                outcome.store_writes.push(path);
                outcome
                    .store_writes
                    .push(format!("{base}/{}", stamp(options.now)));
                return Ok(());
            }
            // The current entry and its history copy go out together: one
            // round trip where there were two in a row. The copy's path is
            // new (a timestamp, check-and-set 0), so when the current
            // write loses its race the copy is this run's own, and is
            // removed again.
            let (wrote, history) = std::thread::scope(|scope| {
                let history = scope.spawn(|| write_history(store, &base, &data, options));
                let wrote = store.write(&path, &data, Some(cas));
                let history = history
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (wrote, history)
            });
            if let Err(e) = wrote {
                if let Ok(copy) = history {
                    if let Err(why) = store.remove(&copy) {
                        eprintln!(
                            "rumor: warning: {}: the history copy {copy} of this failed write stays in the store: {why}",
                            entry.label()
                        );
                    }
                }
                return Err(store_error(entry, e));
            }
            seen.insert(
                path.clone(),
                Seen {
                    version: cas + 1,
                    data: Some(data.clone()),
                },
            );
            outcome.store_writes.push(path);
            outcome
                .store_writes
                .push(history.map_err(|e| store_error(entry, e))?);
        }
    }
    if options.verbose {
        eprintln!("rumor: {}: exported", entry.label());
    }
    Ok(())
}

/// Before a fleet run overwrites a file in the fleet (a device file in
/// git), checks that what is there is what the store vouches for: the copy
/// the store holds, or exactly what this run would write. A file that
/// differs from the store's copy was changed outside rumor, perhaps
/// planted by someone who can push to the repository, and is not silently
/// replaced (`--reencrypt` replaces it on purpose). A file the store has no
/// copy of (a store made before copies were kept, or rebuilt) is replaced
/// with a warning: nothing is taken from it, since the SOPS generation
/// reuses only trusted earlier output. A missing file is simply written.
pub(super) fn check_vouched(
    entry: &Entry,
    ws: &Workspace,
    vouched: &HashMap<String, Zeroizing<Vec<u8>>>,
    store: &LazyStore,
    seen: &HashMap<String, Seen>,
    options: &Options,
) -> Result<(), Error> {
    let args = Args::new(&entry.arguments);
    let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
    let from = args.name("from").map_err(input)?;
    let to = args.str("to").map_err(input)?;
    let shown = resolve(&options.base_dir, to);
    let existing = match fsutil::read_beneath(&options.base_dir, Path::new(to), fsutil::MAX_READ) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(fsutil::ReadError::Missing) => return Ok(()),
        Err(e @ fsutil::ReadError::Refused(_)) => {
            return Err(entry_error(
                entry,
                format!("{} {}", shown.display(), e.reason()),
                Kind::Input,
            ))
        }
        Err(e) => {
            return Err(entry_error(
                entry,
                format!("cannot read {}: {}", shown.display(), e.reason()),
                Kind::Io,
            ))
        }
    };
    let same = |a: &[u8], b: &[u8]| a.trim_ascii_end() == b.trim_ascii_end();
    if ws.get(from).is_some_and(|f| same(&f.content, &existing))
        || vouched.get(from).is_some_and(|v| same(v, &existing))
    {
        return Ok(());
    }
    if !vouched.contains_key(from) {
        if options.dry_run {
            return Err(entry_error(
                entry,
                format!("{} is not vouched for: the store holds no copy of it; a run re-encrypts it from the store under a fresh data key", shown.display()),
                Kind::Integrity,
            ));
        }
        eprintln!(
            "rumor: warning: {}: the store holds no copy of it to vouch for it, so it is re-encrypted from the store under a fresh data key",
            shown.display()
        );
        return Ok(());
    }
    if store_vouched_for(store, seen, from, &existing) {
        return Ok(());
    }
    Err(entry_error(
        entry,
        format!(
            "{} differs from the copy the store holds: it was changed outside rumor, or planted; nothing was written. Review its history (git log -p), then re-encrypt it from the store under a fresh data key with --reencrypt",
            shown.display()
        ),
        Kind::Integrity,
    ))
}

/// Whether the store holds `content` as `name` now or held it recently:
/// another operator's run may have written the store and the file since
/// this run read the store (its own store write will then fail its
/// check-and-set), or a run was killed between writing the store and the
/// file, leaving the file one version behind. Either way the file is one
/// rumor wrote; only the store's copy is ever reused.
fn store_vouched_for(
    store: &LazyStore,
    seen: &HashMap<String, Seen>,
    name: &str,
    content: &[u8],
) -> bool {
    /// How many earlier versions a file may lag behind.
    const RECENT: usize = 10;
    let Ok(store) = store.get() else { return false };
    let holds = |path: &str| matches!(store.read(path), Ok(Some(v)) if v.data.get(name).is_some_and(|v| v.as_bytes().trim_ascii_end() == content.trim_ascii_end()));
    for path in seen.keys() {
        if holds(path) {
            return true;
        }
        let Some(base) = path.strip_suffix("/current") else {
            continue;
        };
        let mut stamps: Vec<String> = store
            .list(base)
            .unwrap_or_default()
            .into_iter()
            .filter(|k| k.len() == 14 && k.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        stamps.sort();
        if stamps
            .iter()
            .rev()
            .take(RECENT)
            .any(|stamp| holds(&format!("{base}/{stamp}")))
        {
            return true;
        }
    }
    false
}
