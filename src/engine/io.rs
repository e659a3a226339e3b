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
use crate::spec::Entry;
use crate::store::{Data, Store};
use crate::workspace::{check_name, File, Visibility, Workspace};

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

pub(super) fn import(entry: &Entry, ws: &mut Workspace, store: &LazyStore, options: &Options, seen: &mut HashMap<String, Seen>) -> Result<(), Error> {
    let args = Args::new(&entry.arguments);
    let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
    let allow_fail = args.bool_or("allow_fail", false).map_err(input)?;
    match entry.kind.as_str() {
        "copy" => {
            let from = resolve(&options.base_dir, args.str("from").map_err(input)?);
            let to = args.name("to").map_err(input)?;
            match std::fs::read(&from) {
                Ok(bytes) => ws.insert(to, File { content: Zeroizing::new(bytes), visibility: Visibility::Private }),
                Err(e) if allow_fail && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(entry_error(entry, format!("cannot read {}: {}", from.display(), crate::error::io_reason(&e)), Kind::Io)),
            }
        }
        "vault" | "vault-file" => {
            let path = current(args.str("path").map_err(input)?);
            let store = open_store(entry, store)?;
            let found = store.read(&path).map_err(|e| store_error(entry, e))?;
            seen.insert(path.clone(), Seen { version: found.as_ref().map(|v| v.version).unwrap_or(0), data: found.as_ref().map(|v| v.data.clone()) });
            let Some(found) = found else {
                if allow_fail {
                    return Ok(());
                }
                return Err(entry_error(entry, format!("nothing at \"{path}\" in {}; set allow_fail = true if that is expected", store.describe()), Kind::Store));
            };
            if entry.kind == "vault" {
                for (key, value) in &found.data {
                    check_name(key).map_err(|why| entry_error(entry, format!("\"{path}\" holds key \"{key}\", which {why}"), Kind::Input))?;
                    ws.insert(key.clone(), File::new(restore_newline(value), Visibility::Private));
                }
            } else {
                let file = args.name("file").map_err(input)?;
                match found.data.get(file) {
                    Some(value) => ws.insert(file, File::new(restore_newline(value), Visibility::Private)),
                    None if allow_fail => {}
                    None => return Err(entry_error(entry, format!("\"{path}\" has no key \"{file}\""), Kind::Store)),
                }
            }
        }
        other => return Err(entry_error(entry, format!("unknown importer \"{other}\""), Kind::Input)),
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
    let file = ws.get(name).ok_or_else(|| entry_error(entry, format!("\"{name}\" is not in the workspace"), Kind::Input))?;
    let text = file.text().ok_or_else(|| entry_error(entry, format!("\"{name}\" is not UTF-8 text, so it cannot go into a store"), Kind::Input))?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn same_data(a: &Data, b: &Data) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).map(|w| w.as_str() == v.as_str()).unwrap_or(false))
}

fn stamp(now: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day][hour][minute][second]");
    now.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_else(|_| now.unix_timestamp().to_string())
}

pub(super) fn export(entry: &Entry, ws: &Workspace, store: &LazyStore, options: &Options, seen: &mut HashMap<String, Seen>, outcome: &mut Outcome) -> Result<(), Error> {
    let args = Args::new(&entry.arguments);
    let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
    match entry.kind.as_str() {
        "copy" => {
            let from = args.name("from").map_err(input)?;
            let to = resolve(&options.base_dir, args.str("to").map_err(input)?);
            let file = ws.get(from).ok_or_else(|| entry_error(entry, format!("\"{from}\" is not in the workspace"), Kind::Input))?;
            if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| entry_error(entry, format!("cannot create {}: {}", parent.display(), crate::error::io_reason(&e)), Kind::Io))?;
            }
            let wrote = fsutil::write_atomic(&to, &file.content, file.visibility.mode())
                .map_err(|e| entry_error(entry, format!("cannot write {}: {}", to.display(), crate::error::io_reason(&e)), Kind::Io))?;
            if wrote {
                outcome.files_written.push(to);
            }
        }
        "vault" | "vault-file" => {
            let base = args.str("path").map_err(input)?.trim_matches('/').to_owned();
            let path = current(&base);
            let store = open_store(entry, store)?;
            // Check-and-set against what the import saw: a concurrent
            // writer in between makes this run fail instead of clobbering.
            let (cas, existing) = match seen.get(&path) {
                Some(s) => (s.version, s.data.clone()),
                None => {
                    let found = store.read(&path).map_err(|e| store_error(entry, e))?;
                    (found.as_ref().map(|v| v.version).unwrap_or(0), found.map(|v| v.data))
                }
            };
            let mut data: Data = existing.unwrap_or_default();
            let old = data.clone();
            if entry.kind == "vault" {
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
            store.write(&path, &data, Some(cas)).map_err(|e| store_error(entry, e))?;
            seen.insert(path.clone(), Seen { version: cas + 1, data: Some(data.clone()) });
            let history = format!("{base}/{}", stamp(options.now));
            store.write(&history, &data, None).map_err(|e| store_error(entry, e))?;
            outcome.store_writes.push(path);
            outcome.store_writes.push(history);
        }
        other => return Err(entry_error(entry, format!("unknown exporter \"{other}\""), Kind::Input)),
    }
    if options.verbose {
        eprintln!("rumor: {}: exported", entry.label());
    }
    Ok(())
}
