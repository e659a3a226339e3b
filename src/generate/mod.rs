//! Generators: each kind is one module with one [`Generator`] value, listed
//! once in [`REGISTRY`]. Adding a kind is a new module plus one line there:
//! the module declares its arguments ([`Generator::args`]), and the spec
//! checks, the schema and the engine's outputs and inputs follow from them.

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::workspace::{check_name, File, Visibility, Workspace};

pub(crate) mod age;
pub(crate) mod args;
pub(crate) mod cockroach;
pub(crate) mod copy;
pub(crate) mod decl;
pub(crate) mod dhparam;
pub(crate) mod env;
pub(crate) mod kdf;
pub(crate) mod mkpasswd;
pub(crate) mod moustache;
pub(crate) mod nebula;
pub(crate) mod openssl;
pub mod pbkdf2;
pub(crate) mod random;
pub(crate) mod sops;
pub(crate) mod ssh;
pub(crate) mod structured;
pub(crate) mod template;
pub(crate) mod text;
pub mod wifi;
pub(crate) mod x509;

pub(crate) use args::ArgError;
pub use args::Args;
pub(crate) use decl::{Arg, Role, Type};

/// Every generator kind, by the name a spec uses.
pub(crate) static REGISTRY: &[(&str, &dyn Generator)] = &[
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
    resolve(kind).map(|r| r.generator)
}

/// A generator kind resolved from the registry: its name and its value.
#[derive(Clone, Copy)]
pub(crate) struct Registered {
    /// The name a spec uses.
    pub name: &'static str,
    /// The generator.
    pub generator: &'static dyn Generator,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The registry entry called `kind`.
pub(crate) fn resolve(kind: &str) -> Option<Registered> {
    REGISTRY
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|&(name, generator)| Registered { name, generator })
}

/// The names of all generator kinds, for error messages and the schema.
pub(crate) fn kinds() -> impl Iterator<Item = &'static str> {
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
    pub identities: &'a [crate::identity::Identity],
}

/// An object-safe cryptographic RNG.
pub use rand_core::CryptoRngCore;

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
        Output {
            name: name.to_owned(),
            file: File::new(content, Visibility::Private),
        }
    }

    /// A public (0644) output.
    pub fn public(name: &str, content: impl Into<Vec<u8>>) -> Output {
        Output {
            name: name.to_owned(),
            file: File::new(content, Visibility::Public),
        }
    }

    /// An output from a zeroizing buffer.
    pub fn secret(name: &str, content: Zeroizing<Vec<u8>>) -> Output {
        Output {
            name: name.to_owned(),
            file: File {
                content,
                visibility: Visibility::Private,
            },
        }
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

/// One kind of generation. Its arguments are declared once, in
/// [`Generator::args`]; the checks, the outputs, the inputs and the schema
/// are read from there.
pub trait Generator: Sync {
    /// What it makes, in one line.
    fn doc(&self) -> &'static str;

    /// Its arguments (every generator also takes `renew`).
    fn args(&self) -> &'static [Arg];

    /// Checks beyond the declaration (an env variable's spelling), made
    /// after the declared ones.
    fn check(&self, _args: &Args) -> Result<(), ArgError> {
        Ok(())
    }

    /// Checks every argument: the declared ones (outputs first), then
    /// [`Generator::check`]. Specs are checked so when parsed.
    fn validate(&self, args: &Args) -> Result<(), ArgError> {
        decl::check(self.args(), args)?;
        self.check(args)
    }

    /// The files this generation makes, for the keep-unless-renew rule: when
    /// all of them exist and renew is off, the generator is not run.
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        decl::outputs(self.args(), args)
    }

    /// Makes the files. May also return files beyond [`Generator::outputs`]
    /// (an updated serial), which are written as well.
    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError>;

    /// Whether it is a key derivation (yescrypt, PBKDF2): CPU-bound for
    /// milliseconds, reading only its declared inputs and no identity. A
    /// run starts one as soon as what it reads is made, on a thread of its
    /// own, beside the generations between.
    fn heavy(&self) -> bool {
        false
    }

    /// Whether the outputs are a pure function of other workspace files
    /// (templates, env files, SOPS files). Device commands re-render these
    /// on every run and keep them only when their content is unchanged.
    fn derived(&self) -> bool {
        false
    }

    /// Outputs that are public (0644) when kept from an import, so a
    /// materialised workspace gets the same modes as a fresh one.
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        decl::named(self.args(), args, Role::Public)
    }

    /// When the entry is written in an argument form of an older release
    /// of the original tool (which still runs, unchanged), the one-line
    /// warning naming the current form.
    fn legacy_form(&self, _args: &Args) -> Option<String> {
        None
    }

    /// Workspace files this generation reads ([`Role::Source`]). When one
    /// of them changed in this run (a rotated password), a device run
    /// remakes the outputs even though they exist (the password's hash).
    fn inputs(&self, args: &Args) -> Vec<String> {
        decl::named(self.args(), args, Role::Source)
    }
}

impl<'a> Context<'a> {
    /// The text of the workspace file named by argument `arg`.
    pub fn input_text(&self, args: &Args, arg: &'static str) -> Result<&'a str, GenError> {
        let name = args.name(arg)?;
        let file = self
            .workspace
            .get(name)
            .ok_or_else(|| GenError::MissingInput {
                arg,
                file: name.to_owned(),
            })?;
        file.text().ok_or_else(|| GenError::BadInput {
            arg,
            file: name.to_owned(),
            reason: "is not UTF-8 text".into(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's generator table is prose, written by hand; this keeps
    /// it complete: every registered generator has a row naming each of
    /// its declared arguments, and a default it states is the declared one.
    #[test]
    fn readme_table_lists_every_generator_and_argument() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let section = readme
            .split("\n### Generators\n")
            .nth(1)
            .expect("README.md has a \"### Generators\" section");
        let section = section.split("\n### ").next().unwrap();
        let rows: Vec<(String, String)> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                (
                    cells[0].to_owned(),
                    cells.get(1).copied().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let row_of = |kind: &str| {
            rows.iter()
                .find(|(kinds, _)| kinds.contains(&format!("`{kind}`")))
                .map(|(_, args)| args.clone())
        };
        let mut problems = Vec::new();
        for (kind, generator) in REGISTRY {
            let Some(mut cell) = row_of(kind) else {
                problems.push(format!("generator `{kind}` has no row"));
                continue;
            };
            // "as `x509-ca`, plus …" takes that row's arguments too.
            if let Some(other) = cell
                .strip_prefix("as `")
                .and_then(|rest| rest.split('`').next())
            {
                cell.push_str(&row_of(other).unwrap_or_default());
            }
            for arg in generator.args() {
                if !cell.contains(&format!("`{}`", arg.name)) {
                    problems.push(format!("`{kind}`: argument `{}` is missing", arg.name));
                }
                if let (Type::Int { default, .. }, Some(at)) =
                    (arg.ty, cell.find(&format!("`{}`=", arg.name)))
                {
                    let stated: String = cell[at + arg.name.len() + 3..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if !stated.is_empty() && stated != default.to_string() {
                        problems.push(format!(
                            "`{kind}`: `{}`={stated}, but the default is {default}",
                            arg.name
                        ));
                    }
                }
            }
        }
        assert!(
            problems.is_empty(),
            "README.md, section \"### Generators\", is out of step with the declarations:\n{}",
            problems.join("\n")
        );
    }
}
