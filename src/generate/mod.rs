//! Generators: each kind is one module with one [`Generator`] value, listed
//! once in [`REGISTRY`]. Adding a kind is a new module plus one line there.

use rand_core::{CryptoRng, RngCore};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::workspace::{check_name, File, Visibility, Workspace};

pub mod age;
pub mod args;
pub mod cockroach;
pub mod copy;
pub mod dhparam;
pub mod env;
pub mod mkpasswd;
pub mod moustache;
pub mod nebula;
pub mod openssl;
pub mod pbkdf2;
pub mod random;
pub mod sops;
pub mod ssh;
pub mod structured;
pub mod template;
pub mod text;
pub mod wifi;
pub mod x509;

pub use args::{ArgError, Args};

/// Every generator kind, by the name a spec uses.
pub static REGISTRY: &[(&str, &dyn Generator)] = &[
    ("copy", &copy::Copy),
    ("text", &text::Text),
    ("json", &structured::Json),
    ("yaml", &structured::Yaml),
    ("toml", &structured::Toml),
    ("id", &random::ID),
    ("key", &random::KEY),
    ("pin", &random::PIN),
    ("mkpasswd", &mkpasswd::Mkpasswd),
    ("age", &age::Age),
    ("ssh-keygen", &ssh::SshKeygen),
    ("env", &env::Env),
    ("moustache", &moustache::Moustache),
    ("sops", &sops::Sops),
    ("openssl-ca", &openssl::OpensslCa),
    ("openssl", &openssl::Openssl),
    ("openssl-dhparam", &dhparam::Dhparam),
    ("nebula-ca", &nebula::NebulaCa),
    ("nebula", &nebula::Nebula),
    ("cockroach-ca", &cockroach::CockroachCa),
    ("cockroach", &cockroach::CockroachNode),
    ("cockroach-client", &cockroach::CockroachClient),
    ("x509-ca", &x509::X509Ca),
    ("x509", &x509::X509),
    ("template", &template::Template),
    ("pbkdf2", &pbkdf2::Pbkdf2),
    ("wpa-psk", &wifi::WpaPsk),
    ("wps-pin", &wifi::WpsPin),
];

/// The generator called `kind`.
pub fn lookup(kind: &str) -> Option<&'static dyn Generator> {
    REGISTRY.iter().find(|(name, _)| *name == kind).map(|(_, g)| *g)
}

/// The names of all generator kinds, for error messages and the schema.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|(name, _)| *name)
}

/// What a generator may use: the workspace to read inputs from, randomness
/// and the clock (passed in so tests can pin them), and the age identities
/// known to this run (to re-open an existing SOPS file without churn).
pub struct Context<'a> {
    /// The files made so far.
    pub workspace: &'a Workspace,
    /// The random source; the OS generator outside tests.
    pub rng: &'a mut dyn CryptoRngCore,
    /// The time the run started.
    pub now: OffsetDateTime,
    /// Identities that may open earlier SOPS files.
    pub identities: &'a [::age::x25519::Identity],
}

/// An object-safe cryptographic RNG.
pub trait CryptoRngCore: RngCore + CryptoRng {}
impl<T: RngCore + CryptoRng> CryptoRngCore for T {}

/// A file a generator made.
pub struct Output {
    /// Its workspace name, checked by the engine.
    pub name: String,
    /// The file.
    pub file: File,
}

impl Output {
    /// A private (0600) output.
    pub fn private(name: &str, content: impl Into<Vec<u8>>) -> Output {
        Output { name: name.to_owned(), file: File::new(content, Visibility::Private) }
    }

    /// A public (0644) output.
    pub fn public(name: &str, content: impl Into<Vec<u8>>) -> Output {
        Output { name: name.to_owned(), file: File::new(content, Visibility::Public) }
    }

    /// An output from a zeroizing buffer.
    pub fn secret(name: &str, content: Zeroizing<Vec<u8>>) -> Output {
        Output { name: name.to_owned(), file: File { content, visibility: Visibility::Private } }
    }
}

/// Why a generation failed. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// An argument is missing or malformed.
    #[error(transparent)]
    Arg(#[from] ArgError),
    /// An input file named by an argument is missing from the workspace.
    #[error("argument \"{arg}\" names \"{file}\", which is not in the workspace; generate or import it first")]
    MissingInput {
        /// The argument.
        arg: &'static str,
        /// The file it names.
        file: String,
    },
    /// An input file is there but unusable.
    #[error("argument \"{arg}\": \"{file}\" {reason}")]
    BadInput {
        /// The argument.
        arg: &'static str,
        /// The file it names.
        file: String,
        /// What is wrong with it (never its content).
        reason: String,
    },
    /// Anything else, said plainly.
    #[error("{0}")]
    Failed(String),
}

/// One kind of generation.
pub trait Generator: Sync {
    /// The files this generation makes, for the keep-unless-renew rule: when
    /// all of them exist and renew is off, the generator is not run.
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError>;

    /// Makes the files. May also return files beyond [`Generator::outputs`]
    /// (an updated serial), which are written as well.
    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError>;

    /// Whether the outputs are a pure function of other workspace files
    /// (templates, env files, SOPS files). Device commands re-render these
    /// on every run and keep them only when their content is unchanged.
    fn derived(&self) -> bool {
        false
    }

    /// Outputs that are public (0644) when kept from an import, so a
    /// materialised workspace gets the same modes as a fresh one.
    fn public_outputs(&self, _args: &Args) -> Vec<String> {
        Vec::new()
    }

    /// When the entry is written in an argument form of an older release
    /// of the original tool (which still runs, unchanged), the one-line
    /// warning naming the current form.
    fn legacy_form(&self, _args: &Args) -> Option<String> {
        None
    }

    /// Workspace files this generation reads. When one of them changed in
    /// this run (a rotated password), a device run remakes the outputs
    /// even though they exist (the password's hash).
    fn inputs(&self, _args: &Args) -> Vec<String> {
        Vec::new()
    }
}

impl<'a> Context<'a> {
    /// The text of the workspace file named by argument `arg`.
    pub fn input_text(&self, args: &Args, arg: &'static str) -> Result<&'a str, GenError> {
        let name = args.name(arg)?;
        let file = self.workspace.get(name).ok_or_else(|| GenError::MissingInput { arg, file: name.to_owned() })?;
        file.text().ok_or_else(|| GenError::BadInput { arg, file: name.to_owned(), reason: "is not UTF-8 text".into() })
    }

    /// A variable's value: the content of the workspace file it names, or
    /// the literal itself when no such file exists (the original's rule).
    pub fn resolve<'v>(&self, value: &'v str) -> &'v str
    where
        'a: 'v,
    {
        if check_name(value).is_ok() {
            if let Some(text) = self.workspace.text(value) {
                return text;
            }
        }
        value
    }
}

/// Reads an argument map from a JSON value, for tests and callers.
pub fn args_of(value: &Value) -> Option<&Map<String, Value>> {
    value.as_object()
}
