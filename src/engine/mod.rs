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

use crate::error::{Error, Kind};
use crate::fsutil;
use crate::generate::{self, Args, Context, CryptoRngCore, GenError};
use crate::spec::{self, Entry, Spec};
use crate::store::{Store, StoreError};
use crate::transfer::{Exporter, Importer};
use crate::workspace::{check_name, File, Visibility, Workspace};

mod io;
use io::{export, import, prefetch, resolve, Seen};

/// Set by the signal handler; checked between entries.
pub(crate) fn interrupted() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

/// What `renew` means for this run.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// `rumor run` / `rumor stdin`: `renew = true` regenerates every run,
    /// as in the original.
    Run,
    /// Device commands: nothing rotates unless asked; derived outputs are
    /// re-rendered every run and kept byte-identical when unchanged.
    Device(Rotation),
}

/// Which secrets a device run rotates.
#[derive(Clone, Debug)]
pub(crate) enum Rotation {
    /// `rumor new`: none.
    Nothing,
    /// `rumor renew`: those the spec marks `renew`.
    Marked,
    /// `rumor renew --secret NAME`: those making one of these files.
    Named(BTreeSet<String>),
    /// `rumor new --reuse-retired`: every generation, so nothing a retired
    /// device knew is handed to its successor.
    All,
}

/// How to run.
pub(crate) struct Options {
    /// The meaning of renew.
    pub mode: Mode,
    /// Identities that can open earlier SOPS files (no-churn re-encryption).
    pub identities: Vec<crate::identity::Identity>,
    /// The run's clock.
    pub now: OffsetDateTime,
    /// Where relative `copy` paths resolve.
    pub base_dir: PathBuf,
    /// Print one line per entry to stderr.
    pub verbose: bool,
    /// Run imports and generations only: no store write, no file written
    /// (`rumor check` compares what a run would produce).
    pub dry_run: bool,
    /// Fleet commands: `copy` and template paths must stay inside
    /// `base_dir`, and a file in the fleet that rumor would overwrite must
    /// be one the store vouches for (see [`Options::reencrypt`]).
    pub confined: bool,
    /// Encrypt SOPS outputs under fresh data keys, reusing nothing from
    /// earlier outputs, and overwrite what the store does not vouch for.
    pub reencrypt: bool,
    /// `rumor plan`: run every step, exports included, but record each
    /// write in the [`Outcome`] instead of making it. Planning runs the
    /// very code the command runs, so the plan and the run agree.
    pub record: bool,
    /// Who runs this and why, recorded with every timestamped version the
    /// run writes.
    pub provenance: crate::store::Provenance,
}

impl Options {
    /// Options for `rumor run` in `base_dir`.
    pub(crate) fn run(base_dir: PathBuf) -> Options {
        Options {
            mode: Mode::Run,
            identities: Vec::new(),
            now: OffsetDateTime::now_utc(),
            base_dir,
            verbose: false,
            dry_run: false,
            confined: false,
            reencrypt: false,
            record: false,
            provenance: crate::store::Provenance::new("run", "run", None),
        }
    }
}

/// What a run did.
#[derive(Default)]
pub(crate) struct Outcome {
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
    /// Files written on disk by copy exporters (with
    /// [`Options::record`]: that would be written).
    pub files_written: Vec<PathBuf>,
    /// What each generation did and why, in spec order.
    pub decisions: Vec<Decision>,
}

/// What a generation did to its outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    /// Its outputs existed and were kept.
    Keep,
    /// Made for the first time.
    Generate,
    /// Existing secrets replaced by new ones.
    Rotate,
    /// A derived file (template, env file, SOPS file) rendered again.
    Rerender,
}

/// Why a generation ran.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub(crate) enum Reason {
    /// An output was absent.
    Missing,
    /// The spec marks it `renew` and the run is `rumor renew`.
    MarkedRenew,
    /// Named by `--secret NAME`.
    Secret,
    /// A certificate expiring within `days` (`renew --expiring`).
    Expiring {
        /// The window.
        days: u32,
    },
    /// A secret a retired device knew (`rumor retire`).
    RetiredDeviceKnewIt {
        /// The retired device.
        device: String,
    },
    /// Every secret is remade (`new --reuse-retired`).
    ReuseRetired,
    /// One of its inputs changed in this run.
    InputsRotated {
        /// Those inputs.
        inputs: Vec<String>,
    },
    /// A SOPS output re-encrypted for another recipient set.
    RecipientsChanged,
    /// A derived output whose template, variables or device fields changed.
    Rendered,
}

/// One generation's decision, for `rumor plan`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Decision {
    /// The entry, `generations[3] (nebula)`.
    pub entry: String,
    /// Its outputs.
    pub outputs: Vec<String>,
    /// What it did.
    pub action: Action,
    /// Why, unless kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The outputs that are new or whose content changed.
    pub changed: Vec<String>,
}

/// A store opened on first use, so specs without Vault entries never need
/// a Vault address.
pub(crate) struct LazyStore {
    cell: OnceLock<Result<Arc<dyn Store>, String>>,
    make: Box<dyn Fn() -> Result<Arc<dyn Store>, String> + Send + Sync>,
}

impl LazyStore {
    /// A store made by `make` when first needed.
    pub(crate) fn new(
        make: impl Fn() -> Result<Arc<dyn Store>, String> + Send + Sync + 'static,
    ) -> LazyStore {
        LazyStore {
            cell: OnceLock::new(),
            make: Box::new(make),
        }
    }

    /// A store that is already open.
    pub(crate) fn ready(store: Arc<dyn Store>) -> LazyStore {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(store));
        LazyStore {
            cell,
            make: Box::new(|| Err("unreachable".into())),
        }
    }

    /// The store, opening it if needed.
    pub(crate) fn get(&self) -> Result<&dyn Store, String> {
        match self.cell.get_or_init(|| (self.make)()) {
            Ok(store) => Ok(store.as_ref()),
            Err(e) => Err(e.clone()),
        }
    }
}

fn entry_error(entry: &Entry, message: impl ToString, kind: Kind) -> Error {
    Error::Entry {
        label: entry.label(),
        message: message.to_string(),
        kind,
    }
}

fn gen_error(entry: &Entry, e: GenError) -> Error {
    entry_error(entry, e, Kind::Input)
}

fn store_error(entry: &Entry, e: StoreError) -> Error {
    let kind = Kind::of(&e);
    let message = e.to_string();
    // Some store errors (sealed, unreachable) name only the server; say
    // which path the entry was using so the operator can check its policy.
    match entry
        .arguments
        .get("path")
        .and_then(|p| p.as_str())
        .map(|p| p.trim_matches('/'))
    {
        Some(path) if !message.contains(path) => {
            entry_error(entry, format!("\"{path}\": {message}"), kind)
        }
        _ => entry_error(entry, message, kind),
    }
}

fn check_interrupted() -> Result<(), Error> {
    if interrupted().load(Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// Checks every entry's arguments before anything runs: the declared
/// ones again (a spec may be built or changed after parsing), then what
/// only the engine knows (store paths, the names in `files`).
pub(crate) fn check(spec: &Spec) -> Result<(), Error> {
    for entry in spec.entries() {
        let args = Args::new(&entry.arguments);
        let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
        match entry.kind {
            spec::Kind::Generator(g) => {
                args.renew().map_err(input)?;
                g.generator.validate(&args).map_err(input)?;
            }
            spec::Kind::Importer(i) => generate::decl::check(i.args(), &args).map_err(input)?,
            spec::Kind::Exporter(e) => {
                generate::decl::check(e.args(), &args).map_err(input)?;
                // Exporters take no allow_fail, but a malformed one was always refused.
                args.bool_or("allow_fail", false).map_err(input)?;
            }
        }
        if matches!(
            entry.kind,
            spec::Kind::Importer(Importer::Vault | Importer::VaultFile)
                | spec::Kind::Exporter(Exporter::Vault | Exporter::VaultFile)
        ) {
            crate::store::split_mount(args.str("path").map_err(input)?)
                .map_err(|e| store_error(entry, e))?;
        }
        if let Some(files) = args
            .opt_str_list("files")
            .map_err(input)?
            .filter(|_| matches!(entry.kind, spec::Kind::Exporter(Exporter::Vault)))
        {
            for (i, f) in files.iter().enumerate() {
                check_name(f).map_err(|why| {
                    entry_error(
                        entry,
                        format!("argument \"files\"[{i}] \"{f}\" {why}"),
                        Kind::Input,
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// The generations written in an older release's argument form, each with
/// the warning naming the current form.
pub(crate) fn legacy_forms(spec: &Spec) -> Vec<(&Entry, String)> {
    spec.generations
        .iter()
        .filter_map(|entry| {
            let spec::Kind::Generator(g) = entry.kind else {
                return None;
            };
            let note = g.generator.legacy_form(&Args::new(&entry.arguments))?;
            Some((entry, note))
        })
        .collect()
}

/// Runs a spec over `workspace` (empty, or the current directory's files
/// with `--stay`).
pub(crate) fn run(
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
    // A spec someone wrote for the original gets told of its 1.x forms; a
    // fleet profile that keeps one on purpose (the original profile's
    // Ed25519 CA) is rumor's own and says nothing on every run.
    if matches!(options.mode, Mode::Run) {
        for (entry, note) in legacy_forms(spec) {
            eprintln!("rumor: warning: {}: {note}", entry.label());
        }
    }
    let mut outcome = Outcome::default();
    // What the imports read, so exports can check-and-set against that
    // version and need not read it again.
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut vouched: HashMap<String, zeroize::Zeroizing<Vec<u8>>> = HashMap::new();

    // RUMOR_TIMINGS=1 prints each entry's wall time to stderr, for the
    // benchmarks' cost split (KDFs, store round trips, the rest).
    let took = |what: &str, entry: &Entry, time: std::time::Duration| {
        if crate::timings::enabled() {
            crate::timings::took(&format!("{what}{}", entry.label()), time);
        }
    };
    let timed = |entry: &Entry, started: std::time::Instant| took("", entry, started.elapsed());
    let made = (|| {
        let started = std::time::Instant::now();
        let mut prefetched = prefetch(&spec.imports, store);
        if !prefetched.is_empty() {
            crate::timings::since("prefetch[0] (vault)", started);
        }
        for entry in &spec.imports {
            check_interrupted()?;
            let started = std::time::Instant::now();
            import(
                entry,
                &mut workspace,
                store,
                options,
                &mut seen,
                &mut prefetched,
            )?;
            timed(entry, started);
        }
        // What the store vouches for, before the generations replace it:
        // the trusted content of every file a fleet `copy` export writes.
        if options.confined {
            for entry in spec.exports.iter().filter(|e| is_file_export(e)) {
                if let Some(from) = entry.arguments.get("from").and_then(|v| v.as_str()) {
                    if workspace.is_trusted(from) {
                        if let Some(file) = workspace.get(from) {
                            vouched.insert(from.to_owned(), file.content.clone());
                        }
                    }
                }
            }
        }
        if options.reencrypt {
            workspace.distrust_all();
        }
        // A key derivation that reads nothing made after some earlier
        // point starts there, on its own thread ([`early_starts`]): a
        // device's yescrypt runs beside its other generations.
        let starts = early_starts(spec);
        std::thread::scope(|scope| {
            // A run that writes the store records who writes in every
            // timestamped version (a token lookup on Vault, once per run):
            // found out beside the generations, once the imports showed
            // the store answers, so no write waits for it and a store
            // that does not answer gets no request more. Only while it is
            // unknown: the devices after the first need no thread for it.
            if looks_up_operator(spec, options) {
                if let Ok(store) = store.get() {
                    if store.operator_unknown() {
                        scope.spawn(move || store.operator());
                    }
                }
            }
            let mut early: HashMap<usize, Early<'_>> = HashMap::new();
            for (i, entry) in spec.generations.iter().enumerate() {
                check_interrupted()?;
                for &h in starts.get(&i).into_iter().flatten() {
                    let later = &spec.generations[h];
                    if let Some(e) = start_early(scope, later, &workspace, options, &outcome) {
                        early.insert(h, e);
                    }
                }
                let started = std::time::Instant::now();
                match generation(
                    entry,
                    &mut workspace,
                    options,
                    rng,
                    &mut outcome,
                    early.remove(&i),
                )? {
                    // Its own time, then how long this run waited for it.
                    Some(own) => {
                        took("", entry, own);
                        took("waited ", entry, started.elapsed());
                    }
                    None => timed(entry, started),
                }
            }
            Ok::<(), Error>(())
        })
    })();
    made?;
    if options.confined && !options.reencrypt {
        for entry in spec.exports.iter().filter(|e| is_file_export(e)) {
            io::check_vouched(entry, &workspace, &vouched, store, &seen, options)?;
        }
    }
    if options.dry_run {
        outcome.workspace = workspace;
        return Ok(outcome);
    }
    let (to_disk, to_store): (Vec<&Entry>, Vec<&Entry>) =
        spec.exports.iter().partition(|e| is_file_export(e));
    for entry in to_store.into_iter().chain(to_disk) {
        check_interrupted()?;
        let started = std::time::Instant::now();
        export(entry, &workspace, store, options, &mut seen, &mut outcome)?;
        timed(entry, started);
    }
    outcome.workspace = workspace;
    Ok(outcome)
}

/// Whether a run reads the store and then writes it (see where it is
/// called).
fn looks_up_operator(spec: &Spec, options: &Options) -> bool {
    !options.dry_run
        && !options.record
        && spec
            .imports
            .iter()
            .any(|e| matches!(e.kind, spec::Kind::Importer(i) if i.reads_store()))
        && spec
            .exports
            .iter()
            .any(|e| matches!(e.kind, spec::Kind::Exporter(e) if e.to_store()))
}

/// A `copy` export: it writes a file on disk.
fn is_file_export(entry: &Entry) -> bool {
    matches!(entry.kind, spec::Kind::Exporter(e) if !e.to_store())
}

/// What a generation's outputs need, before it runs.
struct Want {
    generator: &'static dyn generate::Generator,
    outputs: Vec<String>,
    /// Why a rotation was asked for.
    asked: Option<Reason>,
    /// A derived file, rendered again on every device run.
    rerender: bool,
    /// Its inputs that changed in this run.
    rotated: Vec<String>,
    /// Its outputs not in the workspace.
    missing: Vec<String>,
}

impl Want {
    fn of(
        entry: &Entry,
        ws: &Workspace,
        options: &Options,
        outcome: &Outcome,
    ) -> Result<Want, Error> {
        let args = Args::new(&entry.arguments);
        let spec::Kind::Generator(registered) = entry.kind else {
            return Err(entry_error(entry, "is not a generation", Kind::Input));
        };
        let generator = registered.generator;
        let input = |e: generate::ArgError| entry_error(entry, e, Kind::Input);
        let outputs = generator.outputs(&args).map_err(input)?;
        let marked = args.renew().map_err(input)?;
        let asked = match &options.mode {
            Mode::Run => marked.then_some(Reason::MarkedRenew),
            Mode::Device(Rotation::Nothing) => None,
            Mode::Device(Rotation::Marked) => marked.then_some(Reason::MarkedRenew),
            Mode::Device(Rotation::Named(names)) => outputs
                .iter()
                .any(|o| names.contains(o))
                .then_some(Reason::Secret),
            Mode::Device(Rotation::All) => Some(Reason::ReuseRetired),
        };
        let rerender = matches!(options.mode, Mode::Device(_)) && generator.derived();
        // A rotated input (a password) remakes what is derived from it
        // (its hash) even when that exists, or the two would disagree.
        let rotated: Vec<String> = generator
            .inputs(&args)
            .into_iter()
            .filter(|i| outcome.changed.contains(i))
            .collect();
        let missing = outputs
            .iter()
            .filter(|o| !ws.contains(o))
            .cloned()
            .collect();
        Ok(Want {
            generator,
            outputs,
            asked,
            rerender,
            rotated,
            missing,
        })
    }

    /// Whether its outputs are remade even when they exist: asked for, or
    /// an input rotated.
    fn renews(&self) -> bool {
        self.asked.is_some() || !self.rotated.is_empty()
    }

    /// Whether the generator runs (otherwise its outputs are kept).
    fn makes(&self) -> bool {
        self.renews() || self.rerender || !self.missing.is_empty()
    }
}

/// A generation started early: its outputs, and how long it took.
type Early<'scope> = std::thread::ScopedJoinHandle<
    'scope,
    (Result<Vec<generate::Output>, GenError>, std::time::Duration),
>;

/// The point each key derivation can start from: after the last earlier
/// generation that makes one of the files it reads or makes (index of the
/// generation before which it starts). A derivation whose point is its own
/// place runs in turn, and is not listed. Only [`generate::Generator::heavy`]
/// generators start early, and they read only their declared inputs.
fn early_starts(spec: &Spec) -> HashMap<usize, Vec<usize>> {
    let mut starts: HashMap<usize, Vec<usize>> = HashMap::new();
    let made = |entry: &Entry| -> Option<Vec<String>> {
        let spec::Kind::Generator(g) = entry.kind else {
            return None;
        };
        g.generator.outputs(&Args::new(&entry.arguments)).ok()
    };
    for (h, entry) in spec.generations.iter().enumerate() {
        let spec::Kind::Generator(g) = entry.kind else {
            continue;
        };
        if !g.generator.heavy() {
            continue;
        }
        let args = Args::new(&entry.arguments);
        let Some(mut touched) = made(entry) else {
            continue;
        };
        touched.extend(reads(g.generator, &args));
        let start = spec.generations[..h]
            .iter()
            .rposition(|earlier| match made(earlier) {
                Some(outputs) => outputs.iter().any(|o| touched.contains(o)),
                None => true,
            })
            .map_or(0, |j| j + 1);
        if start < h {
            starts.entry(start).or_default().push(h);
        }
    }
    starts
}

/// The workspace files a generation reads: its declared inputs, and the
/// sources whose change remakes it.
fn reads(generator: &dyn generate::Generator, args: &Args) -> Vec<String> {
    let mut names = generate::decl::named(generator.args(), args, generate::decl::Role::Input);
    names.extend(generator.inputs(args));
    names
}

/// Starts `entry` (a key derivation, from [`early_starts`]) on a thread of
/// `scope` when it will run at all, with copies of the files it reads. It
/// draws from the OS generator, as every caller's run does: a seeded
/// generator's state would sit in memory, unzeroized, holding what the
/// password is made from. An entry whose arguments are wrong is left to
/// run in turn, which reports it in the spec's order.
fn start_early<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    entry: &'env Entry,
    ws: &Workspace,
    options: &Options,
    outcome: &Outcome,
) -> Option<Early<'scope>> {
    let want = Want::of(entry, ws, options, outcome).ok()?;
    if !want.makes() {
        return None;
    }
    let generator = want.generator;
    let args = Args::new(&entry.arguments);
    let mut own = Workspace::new();
    for name in reads(generator, &args) {
        if let Some(file) = ws.get(&name) {
            own.insert(name, file.clone());
        }
    }
    let now = options.now;
    Some(scope.spawn(move || {
        let started = std::time::Instant::now();
        let mut cx = Context {
            workspace: &own,
            rng: &mut rand::rngs::OsRng,
            now,
            identities: &[],
        };
        let made = generator.generate(&Args::new(&entry.arguments), &mut cx);
        (made, started.elapsed())
    }))
}

/// Runs one generation, or keeps its outputs; with `early`, its outputs
/// come from there. Returns the generator's own time when it ran early.
fn generation(
    entry: &Entry,
    ws: &mut Workspace,
    options: &Options,
    rng: &mut dyn CryptoRngCore,
    outcome: &mut Outcome,
    early: Option<Early<'_>>,
) -> Result<Option<std::time::Duration>, Error> {
    let args = Args::new(&entry.arguments);
    let want = Want::of(entry, ws, options, outcome)?;
    let (makes, renew) = (want.makes(), want.renews());
    let Want {
        generator,
        outputs,
        asked,
        rerender,
        rotated,
        missing,
    } = want;
    if !makes {
        for name in generator.public_outputs(&args) {
            if let Some(file) = ws.get(&name) {
                let content = file.content.clone();
                let public = File {
                    content,
                    visibility: Visibility::Public,
                };
                if ws.is_trusted(&name) {
                    ws.insert(name, public);
                } else {
                    ws.insert_untrusted(name, public);
                }
            }
        }
        outcome.kept += 1;
        outcome.decisions.push(Decision {
            entry: entry.label(),
            outputs: outputs.clone(),
            action: Action::Keep,
            reason: None,
            changed: Vec::new(),
        });
        if options.verbose {
            eprintln!("rumor: {}: kept {}", entry.label(), outputs.join(", "));
        }
        // (An early start decides as this does, so none is waiting here.)
        drop(early);
        return Ok(None);
    }
    if !renew && !rerender && missing.len() < outputs.len() {
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        eprintln!(
            "rumor: warning: {}: \"{}\" missing, so its companions are made anew too",
            entry.label(),
            missing.join("\", \"")
        );
    }
    // A derived file that is not stored (a template) is absent at the
    // start of every run: it is made for the first time only when nothing
    // before it was rotated or re-rendered.
    let first_time = missing.len() == outputs.len()
        && (!generator.derived()
            || outcome
                .decisions
                .iter()
                .all(|d| matches!(d.action, Action::Generate | Action::Keep)));
    let action = if first_time {
        Action::Generate
    } else if rerender && asked.is_none() {
        Action::Rerender
    } else {
        Action::Rotate
    };
    let absent = !missing.is_empty() && (!generator.derived() || first_time);
    let reason = match (asked, absent, rotated.is_empty()) {
        (Some(reason), _, _) => reason,
        (None, true, _) => Reason::Missing,
        (None, false, false) => Reason::InputsRotated { inputs: rotated },
        (None, false, true) => Reason::Rendered,
    };
    let (made, took) = match early {
        Some(handle) => {
            let (made, took) = handle.join().map_err(|_| {
                entry_error(entry, "its thread stopped before it finished", Kind::Io)
            })?;
            (made.map_err(|e| gen_error(entry, e))?, Some(took))
        }
        None => {
            let mut cx = Context {
                workspace: ws,
                rng,
                now: options.now,
                identities: &options.identities,
            };
            let made = generator
                .generate(&args, &mut cx)
                .map_err(|e| gen_error(entry, e))?;
            (made, None)
        }
    };
    let mut names = Vec::new();
    let mut changed = Vec::new();
    let earlier_changes = outcome.decisions.iter().any(|d| !d.changed.is_empty());
    let mut recipients_changed = false;
    for output in made {
        check_name(&output.name).map_err(|why| {
            entry_error(
                entry,
                format!("output \"{}\" {why}", output.name),
                Kind::Input,
            )
        })?;
        // A derived file appearing for the first time in this run is not a
        // change; a rotated secret or a re-rendered file that differs is.
        // Stores keep values trimmed, so a remade file that differs from
        // the imported one only by its final newline (the device file) is
        // the same.
        let same = match ws.get(&output.name) {
            Some(old) => old.content.trim_ascii_end() == output.file.content.trim_ascii_end(),
            None => generator.derived(),
        };
        if !same {
            outcome.changed.insert(output.name.clone());
        }
        // For the plan: stores keep values trimmed, so only a difference
        // beyond trailing whitespace is a change; a derived file that is
        // not stored (a template) appears anew in every run, and is a
        // change only when something it may be made from changed.
        match ws.get(&output.name) {
            Some(old) if old.content.trim_ascii_end() == output.file.content.trim_ascii_end() => {}
            Some(old) => {
                changed.push(output.name.clone());
                recipients_changed |= sops_recipients_differ(&old.content, &output.file.content);
            }
            None if generator.derived() && !earlier_changes => {}
            None => changed.push(output.name.clone()),
        }
        names.push(output.name.clone());
        ws.insert(output.name, output.file);
    }
    outcome.decisions.push(Decision {
        entry: entry.label(),
        outputs,
        action,
        reason: Some(match reason {
            Reason::Rendered if recipients_changed => Reason::RecipientsChanged,
            reason => reason,
        }),
        changed,
    });
    outcome.generated += 1;
    if options.verbose {
        eprintln!("rumor: {}: made {}", entry.label(), names.join(", "));
    }
    Ok(took)
}

/// Whether two SOPS files name different recipients (false when either is
/// not a SOPS file).
fn sops_recipients_differ(old: &[u8], new: &[u8]) -> bool {
    let recipients = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.contains("sops:"))
            .and_then(|t| crate::sops::recipients_of(t).ok())
            .map(|r| r.into_iter().collect::<BTreeSet<String>>())
    };
    match (recipients(old), recipients(new)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// Loads the `file` argument of `template` generations into `template`,
/// reading it relative to `base`, so the run itself reads no files.
pub(crate) fn load_templates(spec: &mut Spec, base: &Path) -> Result<(), Error> {
    for entry in spec.generations.iter_mut().filter(|e| e.kind == "template") {
        if entry.arguments.contains_key("template") {
            continue;
        }
        let Some(file) = entry
            .arguments
            .get("file")
            .and_then(|f| f.as_str())
            .map(str::to_owned)
        else {
            continue;
        };
        // A template is read from inside `base` only: `file = "/etc/passwd"`
        // or a symlink out would put another file's content into a
        // workspace file that may be exported.
        let path = resolve(base, &file);
        let bytes = fsutil::read_beneath(base, Path::new(&file), 1 << 20).map_err(|e| {
            let kind = if matches!(e, fsutil::ReadError::Refused(_)) {
                Kind::Input
            } else {
                Kind::Io
            };
            entry_error(
                entry,
                format!(
                    "argument \"file\": cannot read {}: {}",
                    path.display(),
                    e.reason()
                ),
                kind,
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            entry_error(
                entry,
                format!("argument \"file\": {} is not UTF-8 text", path.display()),
                Kind::Input,
            )
        })?;
        entry
            .arguments
            .insert("template".into(), serde_json::Value::String(text));
    }
    Ok(())
}

/// Writes the workspace into `dir` (for `--keep`), each file atomically
/// with its mode.
pub(crate) fn materialize(ws: &Workspace, dir: &Path) -> Result<(), Error> {
    for (name, file) in ws.iter() {
        let path = dir.join(name);
        fsutil::write_atomic(&path, &file.content, file.visibility.mode())
            .map_err(|e| Error::io(&path, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Spec {
        spec::parse(text, spec::Format::Toml, "test.toml").unwrap()
    }

    const KDFS: &str = r#"
[[generations]]
generator = "key"
arguments = { name = "api", length = 8 }

[[generations]]
generator = "pbkdf2"
arguments = { key = "api", name = "api.hash", iterations = 1000 }

[[generations]]
generator = "key"
arguments = { name = "other", length = 8 }

[[generations]]
generator = "mkpasswd"
arguments = { private = "pw", public = "pw.hash", length = 12 }
"#;

    #[test]
    fn a_derivation_starts_after_what_it_reads_or_makes() {
        // The yescrypt reads nothing: it starts before the first
        // generation. The PBKDF2 reads the key made just before it, so it
        // runs in turn.
        let starts = early_starts(&parse(KDFS));
        assert_eq!(starts, HashMap::from([(0, vec![3])]));
        // One that makes a file an earlier generation made (a spec that
        // makes it twice) starts only after that one.
        let later = format!(
            "{KDFS}\n[[generations]]\ngenerator = \"key\"\narguments = {{ name = \"x\" }}\n\n\
             [[generations]]\ngenerator = \"key\"\narguments = {{ name = \"y\" }}\n\n\
             [[generations]]\ngenerator = \"mkpasswd\"\narguments = {{ private = \"x\", public = \"x.hash\" }}\n"
        );
        assert_eq!(
            early_starts(&parse(&later)),
            HashMap::from([(0, vec![3]), (5, vec![6])])
        );
        // Right after it: in turn, not listed.
        let shared = KDFS.replace("name = \"other\"", "name = \"pw\"");
        assert_eq!(early_starts(&parse(&shared)), HashMap::new());
    }

    #[test]
    fn an_early_derivation_gives_what_a_serial_run_gives() {
        let spec = parse(KDFS);
        let options = Options {
            mode: Mode::Run,
            identities: vec![],
            now: OffsetDateTime::now_utc(),
            base_dir: PathBuf::from("."),
            verbose: false,
            dry_run: false,
            confined: false,
            reencrypt: false,
            record: false,
            provenance: crate::store::Provenance::new("test", "test", None),
        };
        let store = LazyStore::new(|| Err("no store".into()));
        let out = run(
            &spec,
            Workspace::new(),
            &store,
            &options,
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        let text = |n: &str| out.workspace.text(n).unwrap().to_owned();
        // The hash is of the password this run kept, and the decisions
        // are in the spec's order.
        let hash = text("pw.hash");
        assert!(hash.starts_with("$y$j9T$"), "{hash}");
        let again = crate::generate::mkpasswd::crypt::crypt(text("pw").as_bytes(), &hash).unwrap();
        assert_eq!(again, hash);
        assert_eq!(
            crate::generate::pbkdf2::verify(&text("api.hash"), text("api").as_bytes()),
            Ok(true)
        );
        let order: Vec<&str> = out.decisions.iter().map(|d| d.entry.as_str()).collect();
        assert_eq!(
            order,
            [
                "generations[0] (key)",
                "generations[1] (pbkdf2)",
                "generations[2] (key)",
                "generations[3] (mkpasswd)"
            ]
        );
        assert_eq!(out.generated, 4);
        // A run over those outputs keeps them: nothing starts early.
        let kept = run(
            &spec,
            out.workspace,
            &store,
            &options,
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        assert_eq!((kept.generated, kept.kept), (0, 4));
        assert_eq!(kept.workspace.text("pw.hash").unwrap(), hash);
    }
}
