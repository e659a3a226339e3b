//! The engine: runs a spec's imports, generations and exports in order over
//! one in-memory workspace.
//!
//! Everything that can be checked is checked before the first import, and
//! every generation runs before the first export, so a bad spec or a failed
//! generator leaves the store and the disk untouched. Store exports run
//! before file exports, so no file on disk holds a secret the store lacks.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::{Error, Kind};
use crate::fsutil;
use crate::generate::{self, Args, Context, CryptoRngCore, GenError};
use crate::spec::{Entry, Spec};
use crate::store::{Data, Store, StoreError};
use crate::workspace::{check_name, File, Visibility, Workspace};

/// Set by the signal handler; checked between entries.
pub fn interrupted() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))).clone()
}

/// What `renew` means for this run.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `rumor run` / `rumor stdin`: `renew = true` regenerates every run,
    /// as in the original.
    Run,
    /// Device commands: nothing rotates unless asked; derived outputs are
    /// re-rendered every run and kept byte-identical when unchanged.
    Device(Rotation),
}

/// Which secrets a device run rotates.
#[derive(Clone, Debug)]
pub enum Rotation {
    /// `rumor new`: none.
    Nothing,
    /// `rumor renew`: those the spec marks `renew`.
    Marked,
    /// `rumor renew --secret NAME`: those making one of these files.
    Named(BTreeSet<String>),
}

/// How to run.
pub struct Options {
    /// The meaning of renew.
    pub mode: Mode,
    /// Identities that can open earlier SOPS files (no-churn re-encryption).
    pub identities: Vec<age::x25519::Identity>,
    /// The run's clock.
    pub now: OffsetDateTime,
    /// Where relative `copy` paths resolve.
    pub base_dir: PathBuf,
    /// Print one line per entry to stderr.
    pub verbose: bool,
    /// Run imports and generations only: no store write, no file written
    /// (`rumor check` compares what a run would produce).
    pub dry_run: bool,
    /// Asked after the generations and before the first export, also when
    /// a generation failed; its error wins. `rumor run` uses it to check
    /// the JSON Schema on another core while the generations run: nothing
    /// before the exports writes anything.
    pub gate: Option<Gate>,
}

/// See [`Options::gate`].
pub type Gate = Box<dyn Fn() -> Result<(), Error> + Send + Sync>;

impl Options {
    /// Options for `rumor run` in `base_dir`.
    pub fn run(base_dir: PathBuf) -> Options {
        Options { mode: Mode::Run, identities: Vec::new(), now: OffsetDateTime::now_utc(), base_dir, verbose: false, dry_run: false, gate: None }
    }
}

/// What a run did.
#[derive(Default)]
pub struct Outcome {
    /// The final workspace.
    pub workspace: Workspace,
    /// Workspace files whose content is new or changed in this run.
    pub changed: BTreeSet<String>,
    /// Generations run (not kept).
    pub generated: usize,
    /// Generations skipped because their outputs existed.
    pub kept: usize,
    /// Store paths written.
    pub store_writes: Vec<String>,
    /// Files written on disk by copy exporters.
    pub files_written: Vec<PathBuf>,
}

/// A store entry as an import (or an earlier export) of this run saw it.
struct Seen {
    version: u64,
    data: Option<Data>,
}

/// A store opened on first use, so specs without Vault entries never need
/// a Vault address.
pub struct LazyStore {
    cell: OnceLock<Result<Arc<dyn Store>, String>>,
    make: Box<dyn Fn() -> Result<Arc<dyn Store>, String> + Send + Sync>,
}

impl LazyStore {
    /// A store made by `make` when first needed.
    pub fn new(make: impl Fn() -> Result<Arc<dyn Store>, String> + Send + Sync + 'static) -> LazyStore {
        LazyStore { cell: OnceLock::new(), make: Box::new(make) }
    }

    /// A store that is already open.
    pub fn ready(store: Arc<dyn Store>) -> LazyStore {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(store));
        LazyStore { cell, make: Box::new(|| Err("unreachable".into())) }
    }

    /// The store, opening it if needed.
    pub fn get(&self) -> Result<&dyn Store, String> {
        match self.cell.get_or_init(|| (self.make)()) {
            Ok(store) => Ok(store.as_ref()),
            Err(e) => Err(e.clone()),
        }
    }
}

fn entry_error(entry: &Entry, message: impl ToString, kind: Kind) -> Error {
    Error::Entry { label: entry.label(), message: message.to_string(), kind }
}

fn gen_error(entry: &Entry, e: GenError) -> Error {
    entry_error(entry, e, Kind::Input)
}

fn store_error(entry: &Entry, e: StoreError) -> Error {
    let kind = match e {
        StoreError::BadPath { .. } => Kind::Input,
        _ => Kind::Store,
    };
    let message = e.to_string();
    // Some store errors (sealed, unreachable) name only the server; say
    // which path the entry was using so the operator can check its policy.
    match entry.arguments.get("path").and_then(|p| p.as_str()).map(|p| p.trim_matches('/')) {
        Some(path) if !message.contains(path) => entry_error(entry, format!("\"{path}\": {message}"), kind),
        _ => entry_error(entry, message, kind),
    }
}

fn check_interrupted() -> Result<(), Error> {
    if interrupted().load(Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// Checks every entry's arguments before anything runs.
pub fn check(spec: &Spec) -> Result<(), Error> {
    for entry in spec.entries() {
        let args = Args::new(&entry.arguments);
        let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
        match (entry.section, entry.kind.as_str()) {
            (crate::spec::Section::Generations, kind) => {
                let generator = generate::lookup(kind).ok_or_else(|| entry_error(entry, "unknown generator", Kind::Input))?;
                args.renew().map_err(input)?;
                generator.outputs(&args).map_err(input)?;
            }
            (_, "copy") => {
                args.str("from").map_err(input)?;
                args.str("to").map_err(input)?;
                let name = if entry.section == crate::spec::Section::Imports { "to" } else { "from" };
                args.name(name).map_err(input)?;
                args.bool_or("allow_fail", false).map_err(input)?;
            }
            (_, "vault") => {
                crate::store::split_mount(args.str("path").map_err(input)?).map_err(|e| store_error(entry, e))?;
                args.bool_or("allow_fail", false).map_err(input)?;
                if let Some(files) = args.opt_str_list("files").map_err(input)? {
                    for (i, f) in files.iter().enumerate() {
                        check_name(f).map_err(|why| entry_error(entry, format!("argument \"files\"[{i}] \"{f}\" {why}"), Kind::Input))?;
                    }
                }
            }
            (_, "vault-file") => {
                crate::store::split_mount(args.str("path").map_err(input)?).map_err(|e| store_error(entry, e))?;
                args.name("file").map_err(input)?;
                args.bool_or("allow_fail", false).map_err(input)?;
            }
            (_, kind) => return Err(entry_error(entry, format!("unknown kind \"{kind}\""), Kind::Input)),
        }
    }
    Ok(())
}

/// Runs a spec over `workspace` (empty, or the current directory's files
/// with `--stay`).
pub fn run(
    spec: &Spec,
    mut workspace: Workspace,
    store: &LazyStore,
    options: &Options,
    rng: &mut dyn CryptoRngCore,
) -> Result<Outcome, Error> {
    check(spec)?;
    for entry in spec.entries().filter(|e| e.stray_renew) {
        eprintln!("rumor: warning: {}: \"renew\" beside \"arguments\" is ignored, as in the original; move it into arguments", entry.label());
    }
    let mut outcome = Outcome::default();
    // What the imports read, so exports can check-and-set against that
    // version and need not read it again.
    let mut seen: HashMap<String, Seen> = HashMap::new();

    // RUMOR_TIMINGS=1 prints each entry's wall time to stderr, for the
    // benchmarks' cost split (KDFs, store round trips, the rest).
    let timings = std::env::var_os("RUMOR_TIMINGS").is_some_and(|v| v == "1");
    let timed = |entry: &Entry, started: std::time::Instant| {
        if timings {
            eprintln!("rumor: timing: {} {:.3} ms", entry.label(), started.elapsed().as_secs_f64() * 1e3);
        }
    };
    let made = (|| {
        for entry in &spec.imports {
            check_interrupted()?;
            let started = std::time::Instant::now();
            import(entry, &mut workspace, store, options, &mut seen)?;
            timed(entry, started);
        }
        for entry in &spec.generations {
            check_interrupted()?;
            let started = std::time::Instant::now();
            generation(entry, &mut workspace, options, rng, &mut outcome)?;
            timed(entry, started);
        }
        Ok::<(), Error>(())
    })();
    if let Some(gate) = &options.gate {
        gate()?;
    }
    made?;
    if options.dry_run {
        outcome.workspace = workspace;
        return Ok(outcome);
    }
    let (to_store, to_disk): (Vec<&Entry>, Vec<&Entry>) = spec.exports.iter().partition(|e| e.kind != "copy");
    for entry in to_store.into_iter().chain(to_disk) {
        check_interrupted()?;
        let started = std::time::Instant::now();
        export(entry, &workspace, store, options, &mut seen, &mut outcome)?;
        timed(entry, started);
    }
    outcome.workspace = workspace;
    Ok(outcome)
}

fn resolve(base: &Path, path: &str) -> PathBuf {
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

fn import(entry: &Entry, ws: &mut Workspace, store: &LazyStore, options: &Options, seen: &mut HashMap<String, Seen>) -> Result<(), Error> {
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

fn generation(entry: &Entry, ws: &mut Workspace, options: &Options, rng: &mut dyn CryptoRngCore, outcome: &mut Outcome) -> Result<(), Error> {
    let args = Args::new(&entry.arguments);
    let generator = generate::lookup(&entry.kind).ok_or_else(|| entry_error(entry, "unknown generator", Kind::Input))?;
    let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
    let outputs = generator.outputs(&args).map_err(input)?;
    let marked = args.renew().map_err(input)?;
    let renew = match &options.mode {
        Mode::Run => marked,
        Mode::Device(Rotation::Nothing) => false,
        Mode::Device(Rotation::Marked) => marked,
        Mode::Device(Rotation::Named(names)) => outputs.iter().any(|o| names.contains(o)),
    };
    let rerender = matches!(options.mode, Mode::Device(_)) && generator.derived();
    // A rotated input (a password) remakes what is derived from it (its
    // hash) even when that exists, or the two would disagree.
    let renew = renew || generator.inputs(&args).iter().any(|i| outcome.changed.contains(i));
    let missing: Vec<&String> = outputs.iter().filter(|o| !ws.contains(o)).collect();
    if !renew && !rerender && missing.is_empty() {
        for name in generator.public_outputs(&args) {
            if let Some(file) = ws.get(&name) {
                let content = file.content.clone();
                ws.insert(name, File { content, visibility: Visibility::Public });
            }
        }
        outcome.kept += 1;
        if options.verbose {
            eprintln!("rumor: {}: kept {}", entry.label(), outputs.join(", "));
        }
        return Ok(());
    }
    if !renew && !rerender && missing.len() < outputs.len() {
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        eprintln!("rumor: warning: {}: \"{}\" missing, so its companions are made anew too", entry.label(), missing.join("\", \""));
    }
    let made = {
        let mut cx = Context { workspace: ws, rng, now: options.now, identities: &options.identities };
        generator.generate(&args, &mut cx).map_err(|e| gen_error(entry, e))?
    };
    let mut names = Vec::new();
    for output in made {
        check_name(&output.name).map_err(|why| entry_error(entry, format!("output \"{}\" {why}", output.name), Kind::Input))?;
        // A derived file appearing for the first time in this run is not a
        // change; a rotated secret or a re-rendered file that differs is.
        let same = match ws.get(&output.name) {
            Some(old) => old.content.as_slice() == output.file.content.as_slice(),
            None => generator.derived(),
        };
        if !same {
            outcome.changed.insert(output.name.clone());
        }
        names.push(output.name.clone());
        ws.insert(output.name, output.file);
    }
    outcome.generated += 1;
    if options.verbose {
        eprintln!("rumor: {}: made {}", entry.label(), names.join(", "));
    }
    Ok(())
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

fn export(entry: &Entry, ws: &Workspace, store: &LazyStore, options: &Options, seen: &mut HashMap<String, Seen>, outcome: &mut Outcome) -> Result<(), Error> {
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

/// Loads the `file` argument of `template` generations into `template`,
/// reading it relative to `base`, so the run itself reads no files.
pub fn load_templates(spec: &mut Spec, base: &Path) -> Result<(), Error> {
    for entry in spec.generations.iter_mut().filter(|e| e.kind == "template") {
        if entry.arguments.contains_key("template") {
            continue;
        }
        let Some(file) = entry.arguments.get("file").and_then(|f| f.as_str()).map(str::to_owned) else { continue };
        let path = resolve(base, &file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| entry_error(entry, format!("argument \"file\": cannot read {}: {}", path.display(), crate::error::io_reason(&e)), Kind::Input))?;
        entry.arguments.insert("template".into(), serde_json::Value::String(text));
    }
    Ok(())
}

/// Writes the workspace into `dir` (for `--keep`), each file atomically
/// with its mode.
pub fn materialize(ws: &Workspace, dir: &Path) -> Result<(), Error> {
    for (name, file) in ws.iter() {
        let path = dir.join(name);
        fsutil::write_atomic(&path, &file.content, file.visibility.mode()).map_err(|e| Error::io(&path, &e))?;
    }
    Ok(())
}
