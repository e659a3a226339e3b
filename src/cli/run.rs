//! `rumor run`, `rumor stdin` and `rumor decrypt`: the original tool's
//! commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::engine::{self, LazyStore, Options};
use crate::error::Error;
use crate::spec::{self, Format, Spec};
use crate::store::vault::{Vault, VaultConfig};
use crate::store::Store;
use crate::workspace::{check_name, File, Visibility, Workspace};

/// Flags shared by `run` and `stdin`.
#[derive(Args, Debug, Clone)]
pub(crate) struct WorkspaceFlags {
    /// Work in the current directory: its files seed the workspace, and with
    /// --keep the results are written there (as the original's --stay).
    #[arg(long)]
    pub stay: bool,
    /// Keep the workspace files at the end: in the current directory with
    /// --stay, else in a new private directory (0700, on tmpfs when there
    /// is one) whose path is printed. Without it nothing is left on disk.
    #[arg(long)]
    pub keep: bool,
    /// Say what each entry did.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `rumor run <spec>`.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The spec file: .json, .yaml/.yml or .toml.
    pub spec: PathBuf,
    /// --stay, --keep, --verbose.
    #[command(flatten)]
    pub flags: WorkspaceFlags,
}

/// `rumor stdin <format>`.
#[derive(Args, Debug)]
pub(crate) struct StdinArgs {
    /// The spec's format: json, yaml or toml.
    #[arg(value_parser = ["json", "yaml", "yml", "toml"])]
    pub format: String,
    /// --stay, --keep, --verbose.
    #[command(flatten)]
    pub flags: WorkspaceFlags,
}

/// `rumor decrypt <file>`.
#[derive(Args, Debug)]
pub(crate) struct DecryptArgs {
    /// The SOPS file.
    pub file: PathBuf,
    /// An age identity file (default: SOPS_AGE_KEY_FILE, SOPS_AGE_KEY,
    /// ~/.config/sops/age/keys.txt, then rumor's admin identity).
    #[arg(short, long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// Runs a spec file.
pub(crate) fn run(args: RunArgs) -> Result<(), Error> {
    let origin = args.spec.display().to_string();
    let format = Format::from_path(&args.spec).ok_or_else(|| spec::SpecError::UnknownFormat {
        origin: origin.clone(),
    })?;
    let bytes = crate::fsutil::read_regular(&args.spec, crate::fsutil::MAX_READ)
        .map_err(|e| Error::read(&args.spec, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Input(format!("{origin}: is not UTF-8 text")))?;
    parse_and_execute(text, format, origin, &args.flags)
}

/// Parses (checking every entry against its declaration), then runs.
fn parse_and_execute(
    text: String,
    format: Format,
    origin: String,
    flags: &WorkspaceFlags,
) -> Result<(), Error> {
    let mut spec = spec::parse(&text, format, &origin)?;
    engine::load_templates(&mut spec, &super::current_dir()?)?;
    execute(&spec, &text, flags)
}

/// Runs a spec from standard input.
pub(crate) fn stdin(args: StdinArgs) -> Result<(), Error> {
    let format = Format::from_name(&args.format).ok_or_else(|| {
        Error::Usage(format!(
            "unknown format \"{}\"; use json, yaml or toml",
            args.format
        ))
    })?;
    let mut bytes = super::read_stdin(super::MAX_STDIN_SPEC, "the spec")?;
    let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|_| {
        Error::Input("<stdin>: is not UTF-8 text; pipe a spec in JSON, YAML or TOML".into())
    })?;
    parse_and_execute(text, format, "<stdin>".into(), &args.flags)
}

/// The Vault store from the environment, opened on first use.
pub(crate) fn vault_from_env() -> LazyStore {
    LazyStore::new(|| {
        let config = VaultConfig::from_env().map_err(|e| e.to_string())?;
        let vault = Vault::connect(&config).map_err(|e| e.to_string())?;
        Ok(Arc::new(vault) as Arc<dyn Store>)
    })
}

fn execute(spec: &Spec, text: &str, flags: &WorkspaceFlags) -> Result<(), Error> {
    // Refused here, as input, before the store is opened lazily mid-run.
    crate::store::vault::check_env_addr()?;
    let cwd = super::current_dir()?;
    let workspace = if flags.stay {
        seed(&cwd)?
    } else {
        Workspace::new()
    };
    let mut options = Options::run(cwd.clone());
    options.provenance = crate::store::Provenance::new("run", "run", Some(text));
    options.identities = crate::identity::available();
    options.verbose = flags.verbose;
    let store = vault_from_env();
    let mut rng = rand::rngs::OsRng;
    let outcome = engine::run(spec, workspace, &store, &options, &mut rng)?;
    if flags.keep {
        if flags.stay {
            engine::materialize(&outcome.workspace, &cwd)?;
        } else {
            let dir = private_dir()?;
            // Until its path is printed nobody knows it is there: a signal
            // or a failed write removes it with the secrets in it.
            let leftover = crate::interrupt::remove_dir_on_exit(&dir);
            if let Err(e) = engine::materialize(&outcome.workspace, &dir) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
            eprintln!(
                "rumor: kept the workspace in {} (remove it when done)",
                dir.display()
            );
            drop(leftover);
        }
    }
    eprintln!(
        "rumor: {} generated, {} kept, {} store writes, {} files written",
        outcome.generated,
        outcome.kept,
        outcome.store_writes.len(),
        outcome.files_written.len()
    );
    Ok(())
}

/// With --stay, the current directory's plain files are the workspace, as
/// they were for the original.
fn seed(dir: &Path) -> Result<Workspace, Error> {
    let mut ws = Workspace::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, &e))?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.')
            || check_name(&name).is_err()
            || !entry.file_type().map(|t| t.is_file()).unwrap_or(false)
        {
            continue;
        }
        files.push((name, entry.path()));
    }
    files.sort();
    for (name, path) in files {
        let bytes = crate::fsutil::read_beneath(dir, Path::new(&name), crate::fsutil::MAX_READ)
            .map_err(|e| Error::read(&path, e))?;
        let visibility = match std::fs::metadata(&path) {
            Ok(m) if std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o044 != 0 => {
                Visibility::Public
            }
            _ => Visibility::Private,
        };
        ws.insert_untrusted(name, File::new(bytes, visibility));
    }
    Ok(ws)
}

/// A new 0700 directory for --keep, on tmpfs when one is writable.
fn private_dir() -> Result<PathBuf, Error> {
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
    ];
    for base in candidates.into_iter().flatten() {
        if let Ok(dir) = tempfile::Builder::new().prefix("rumor-").tempdir_in(&base) {
            return Ok(dir.keep());
        }
    }
    tempfile::Builder::new()
        .prefix("rumor-")
        .tempdir()
        .map(|d| d.keep())
        .map_err(|e| Error::io(&std::env::temp_dir(), &e))
}

/// Prints a SOPS file's plaintext.
pub(crate) fn decrypt(args: DecryptArgs) -> Result<(), Error> {
    let identities = crate::identity::for_sops(args.identity.as_deref())?;
    let bytes = crate::fsutil::read_regular(&args.file, crate::fsutil::MAX_READ)
        .map_err(|e| Error::read(&args.file, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Input(format!("{}: is not a text file", args.file.display())))?;
    let decrypted = crate::sops::decrypt(&text, &identities).map_err(|e| {
        let message = format!("{}: {e}", args.file.display());
        // A format rumor does not read is bad input, not a broken file.
        match e {
            crate::sops::SopsError::UnknownVersion { .. } => Error::Input(message),
            _ => Error::Integrity(message),
        }
    })?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(decrypted.yaml().as_bytes())
        .map_err(|e| Error::io(Path::new("<stdout>"), &e))?;
    Ok(())
}
