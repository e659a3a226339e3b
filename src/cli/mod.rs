//! The command line: argument parsing and dispatch.
//!
//! Output rules, for every command:
//! - data (decrypted files, stored values, `--json`) goes to stdout;
//! - diagnostics, warnings and progress go to stderr, prefixed `rumor:`;
//! - progress bars and prompts appear only on a terminal;
//! - `--json` output is a stable shape for scripts;
//! - no secret value and no token is ever printed except as the requested
//!   data of `decrypt` and `get`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Error;

pub(crate) mod docs;
pub(crate) mod fleet;
pub(crate) mod history;
pub(crate) mod image;
pub(crate) mod inspect;
pub(crate) mod plan;
pub(crate) mod process;
pub(crate) mod progress;
pub(crate) mod run;

/// rumor: provision the secrets of a fleet of edge devices.
#[derive(Parser, Debug)]
#[command(
    name = "rumor",
    version,
    about = "Provision the secrets of a fleet of edge devices",
    long_about = "Provision the secrets of a fleet of edge devices.\n\n\
        A spec lists imports, generations and exports; rumor runs them over an \
        in-memory workspace, keeps the results in Vault (or an embedded \
        age-encrypted store) and writes SOPS files for the devices.\n\n\
        `rumor <spec>` is short for `rumor run <spec>`.",
    after_help = "Examples:\n  \
        rumor init fleet && cd fleet   a fleet on the embedded store (VAULT_ADDR set: on Vault)\n  \
        rumor new pidgeon-1            provision a device: secrets/pidgeon-1.yaml\n  \
        rumor renew --all              rotate passwords and API keys\n  \
        rumor check                    device files decrypt, match the store, certs not expiring\n  \
        rumor run spec.toml            run a spec (Vault from VAULT_ADDR/VAULT_TOKEN)\n  \
        nix eval --json .#spec | rumor stdin json --stay\n  \
        rumor decrypt secrets/pidgeon-1.yaml --identity key.txt"
)]
pub(crate) struct Cli {
    /// The fleet directory, for fleet commands.
    #[command(flatten)]
    pub fleet: fleet::FleetArg,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run a spec file (JSON, YAML or TOML, by extension).
    Run(run::RunArgs),
    /// Run a spec read from standard input.
    Stdin(run::StdinArgs),
    /// Print the JSON Schema of the spec format.
    Schema,
    /// Print the plaintext of a SOPS file.
    Decrypt(run::DecryptArgs),
    /// Create a fleet: rumor.toml, templates, the admin identity and the
    /// fleet CAs in the store.
    Init(fleet::InitArgs),
    /// Take over a fleet the original tool provisioned: its device list
    /// becomes devices/<id>.toml, its addresses the ledger.
    Adopt(fleet::AdoptArgs),
    /// Provision devices: create devices/<id>.toml if missing, fetch or
    /// generate every secret, write secrets/<id>.yaml. Rotates nothing.
    New(fleet::NewArgs),
    /// Rotate secrets: those the profile marks renew, or --secret NAME.
    Renew(fleet::RenewArgs),
    /// Show what `new` (or `renew`) would change, writing nothing; exit 2
    /// when something would change.
    Plan(plan::PlanArgs),
    /// Take devices out of service for good: block their Nebula
    /// certificate, revoke their X.509 certificates, remove their device
    /// files, keep their store data as history.
    Retire(plan::RetireArgs),
    /// Print one stored value of a device (e.g. age.key).
    Get(inspect::GetArgs),
    /// List devices with their IP and the age of their oldest secret.
    List(inspect::ListArgs),
    /// Print a device's rendered spec.
    Spec(inspect::SpecArgs),
    /// Check device files: they decrypt, match the store, and no
    /// certificate expires soon.
    Check(inspect::CheckArgs),
    /// Print a device's history: when each secret was created and
    /// rotated, by whom and why (values only as fingerprints).
    Log(history::LogArgs),
    /// Write one self-contained HTML page of the fleet's security state:
    /// expiry, secret ages, drift, keys, retired devices, latest changes.
    Report(history::ReportArgs),
    /// Re-encrypt the embedded store and every device file to the admins
    /// in rumor.toml (signing the store with a new store key, pinned as
    /// store.signer). Rotates no secret.
    Rekey(fleet::RekeyArgs),
    /// Add, remove or list the fleet's admins (admins.recipients), then
    /// rekey. Rotates no secret.
    #[command(subcommand)]
    Admins(fleet::AdminsCommand),
    /// Write a device's age key into its disk image (guestfish).
    Inject(image::InjectArgs),
    /// Check a disk image before flashing: it holds the device's current
    /// key, mode 0400, owned by root, opening its device file and no other
    /// (read-only guestfish).
    #[command(name = "verify-image")]
    VerifyImage(image::VerifyImageArgs),
    /// Cloud API key hashes.
    #[command(name = "api-key", subcommand)]
    ApiKey(image::ApiKeyCommand),
    /// Print a shell completion script (bash, zsh or fish).
    #[command(after_help = "Examples:\n  \
        source <(rumor completions bash)                      in ~/.bashrc\n  \
        rumor completions zsh > ~/.zfunc/_rumor               with ~/.zfunc on $fpath\n  \
        rumor completions fish > ~/.config/fish/completions/rumor.fish")]
    Completions {
        /// The shell.
        shell: docs::Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  rumor man > rumor.1 && man ./rumor.1")]
    Man,
}

const SUBCOMMANDS: &[&str] = &[
    "run",
    "stdin",
    "schema",
    "decrypt",
    "init",
    "adopt",
    "new",
    "renew",
    "plan",
    "retire",
    "get",
    "list",
    "spec",
    "check",
    "log",
    "report",
    "rekey",
    "admins",
    "inject",
    "verify-image",
    "api-key",
    "completions",
    "man",
    "help",
];

/// `rumor <spec>` means `rumor run <spec>`: insert `run` when the first
/// argument is neither a flag nor a subcommand.
fn with_shorthand(mut args: Vec<OsString>) -> Vec<OsString> {
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if !first.starts_with('-') && !SUBCOMMANDS.contains(&first) {
            args.insert(1, OsString::from("run"));
        }
    }
    args
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    process::harden();
    let args = with_shorthand(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let started = std::time::Instant::now();
    let result = dispatch(cli);
    crate::timings::since("command", started);
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rumor: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Stdin(args) => run::stdin(args),
        Command::Schema => {
            print!("{}", crate::schema::schema());
            Ok(())
        }
        Command::Decrypt(args) => run::decrypt(args),
        Command::Init(args) => fleet::init(&cli.fleet, args),
        Command::Adopt(args) => fleet::adopt(&cli.fleet, args),
        Command::New(args) => fleet::new(&cli.fleet, args),
        Command::Renew(args) => fleet::renew(&cli.fleet, args),
        Command::Plan(args) => plan::plan(&cli.fleet, args),
        Command::Retire(args) => plan::retire(&cli.fleet, args),
        Command::Get(args) => inspect::get(&cli.fleet, args),
        Command::List(args) => inspect::list(&cli.fleet, args),
        Command::Spec(args) => inspect::spec(&cli.fleet, args),
        Command::Check(args) => inspect::check(&cli.fleet, args),
        Command::Log(args) => history::log(&cli.fleet, args),
        Command::Report(args) => history::report(&cli.fleet, args),
        Command::Rekey(args) => fleet::rekey(&cli.fleet, args),
        Command::Admins(command) => fleet::admins(&cli.fleet, command),
        Command::Inject(args) => image::inject(&cli.fleet, args),
        Command::VerifyImage(args) => image::verify_image(&cli.fleet, args),
        Command::ApiKey(command) => image::api_key(command),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man => docs::man(),
    }
}

/// The most `rumor stdin` reads: a generated spec for hundreds of devices
/// is well under a megabyte.
pub(crate) const MAX_STDIN_SPEC: u64 = 4 << 20;

/// The most `rumor api-key verify` reads: a key is a line.
pub(crate) const MAX_STDIN_KEY: u64 = 1 << 20;

/// Reads standard input, refusing more than `limit` bytes (`what` names the
/// input in the message), so `rumor stdin < /dev/zero` ends with one line
/// instead of eating memory. The buffer is wiped on drop: it may be a key.
pub(crate) fn read_stdin(limit: u64, what: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    use std::io::Read;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    // One byte past the limit tells "exactly at the limit" from "over it".
    std::io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(std::path::Path::new("<stdin>"), &e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::Input(format!(
            "<stdin>: {what} is larger than {} MiB; rumor reads at most that much",
            limit >> 20
        )));
    }
    Ok(bytes)
}

/// The current directory, or an error saying so.
pub(crate) fn current_dir() -> Result<PathBuf, Error> {
    std::env::current_dir().map_err(|e| Error::Io {
        path: ".".into(),
        reason: crate::error::io_reason(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            with_shorthand(a(&["rumor", "spec.toml", "--stay"])),
            a(&["rumor", "run", "spec.toml", "--stay"])
        );
        assert_eq!(
            with_shorthand(a(&["rumor", "run", "x"])),
            a(&["rumor", "run", "x"])
        );
        assert_eq!(
            with_shorthand(a(&["rumor", "--help"])),
            a(&["rumor", "--help"])
        );
        Cli::try_parse_from(a(&["rumor", "run", "s.toml", "--stay", "--keep"])).unwrap();
    }

    #[test]
    fn shorthand_knows_every_subcommand() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        let mut clap: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        let mut ours = SUBCOMMANDS.to_vec();
        clap.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, clap);
    }
}
