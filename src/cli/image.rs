//! `rumor inject`, `rumor verify-image` and `rumor api-key`: the commands
//! that hand secrets to the outside (a disk image, the cloud side), and the
//! check of what an image holds before it is flashed.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::fleet::Fleet;
use crate::image::verify::ReadOptions;
use crate::image::{ImageError, InjectOptions, Partition};
use crate::ops::verify::{Expected, Problem};

/// Where the key is in the image: the options `inject` and `verify-image`
/// share.
#[derive(Args, Debug)]
pub(crate) struct KeyInImage {
    /// The key's path inside the image (default: [image] key_path of
    /// rumor.toml, /root/host.scrt.key).
    #[arg(long, value_name = "P")]
    pub path: Option<String>,
    /// `auto` (the ext4 NIXOS_SD partition, else the only Linux
    /// filesystem) or a partition number.
    #[arg(long, value_name = "N|auto", default_value = "auto")]
    pub partition: String,
}

impl KeyInImage {
    /// `--path`, else the fleet's `[image] key_path`.
    fn path(&self, fleet: &Fleet) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| fleet.settings.image.key_path.clone())
    }
}

/// `rumor inject`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor inject pidgeon-1 result/sd-image/pidgeon-1.img            write the key\n  \
    rumor inject pidgeon-1 pidgeon-1.img.zst --verify               write it, then check the image\n  \
    rumor inject pidgeon-1 pidgeon-1.img --dry-run                  print the plan")]
pub(crate) struct InjectArgs {
    /// The device whose age key is written.
    pub device: String,
    /// The disk image: .img, or .img.zst (decompressed and recompressed).
    pub image: PathBuf,
    #[command(flatten)]
    pub key: KeyInImage,
    /// The key file's mode, in octal.
    #[arg(long, value_name = "MODE", default_value = "0400")]
    pub mode: String,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// After writing, check the image as `rumor verify-image` does (a
    /// second, read-only guestfish launch).
    #[arg(long)]
    pub verify: bool,
}

/// `rumor verify-image`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor verify-image pidgeon-1 result/sd-image/pidgeon-1.img   before flashing\n  \
    rumor verify-image pidgeon-1 pidgeon-1.img.zst --partition 2\n\n\
    Exits 0 when the image is ready to flash; 5 with one line per problem\n\
    on stdout when it is not; 3 for an unknown, retired or unprovisioned device.")]
pub(crate) struct VerifyImageArgs {
    /// The device the image is for.
    pub device: String,
    /// The disk image: .img, or .img.zst (decompressed beside it, then removed).
    pub image: PathBuf,
    #[command(flatten)]
    pub key: KeyInImage,
    /// The key file's expected mode, in octal.
    #[arg(long, value_name = "MODE", default_value = "0400")]
    pub mode: String,
}

/// `rumor api-key …`.
#[derive(Subcommand, Debug)]
pub(crate) enum ApiKeyCommand {
    /// Check a key against a `pbkdf2-sha256$…` hash (constant time). The
    /// key is read from standard input when omitted or `-`, so it need not
    /// appear in the process list. Exits 0 on a match, 1 otherwise.
    Verify {
        /// The stored hash.
        hash: String,
        /// The key, or - for standard input.
        key: Option<String>,
    },
}

fn image_error(e: ImageError) -> Error {
    e.into_error("inject")
}

/// `rumor inject`.
pub(crate) fn inject(fleet: &super::fleet::FleetArg, args: InjectArgs) -> Result<(), Error> {
    // Checked before the fleet is opened: a mode that would expose the key
    // is refused whatever else is wrong.
    let mode = parse_mode(&args.mode, "inject")?;
    let dir = match &fleet.fleet {
        Some(d) => d.clone(),
        None => super::current_dir()?,
    };
    let opened = Fleet::open(&dir)?;
    // A retired device's image must not be flashed: no key for it, with or
    // without --verify (which also asks the store).
    if let Some(retired) = crate::device::load(&opened, &args.device)?.retired {
        return Err(Error::Input(format!(
            "{} was retired at {}: its image must not be flashed; no key was written",
            args.device,
            retired.at.escape_default()
        )));
    }
    let partition = parse_partition(&args.key.partition)?;
    let options = InjectOptions {
        image: args.image.clone(),
        path: args.key.path(&opened),
        partition,
        mode,
        dry_run: args.dry_run,
    };
    if args.dry_run {
        for line in crate::image::plan(&options).map_err(image_error)? {
            println!("{line}");
        }
        if args.verify {
            println!("then check the image as `rumor verify-image` does (one more, read-only, guestfish launch)");
        }
        return Ok(());
    }
    let identities =
        crate::ops::admin_identities(opened.settings.store.kind == crate::fleet::StoreKind::Local)?;
    let handle = opened.store(&identities)?;
    // What the check compares with is read before anything is written, so
    // a device it would refuse (a retired one) gets no key either.
    let expected = match args.verify {
        true => Some(Expected::load(
            &opened,
            handle.as_ref(),
            &args.device,
            mode,
        )?),
        false => None,
    };
    let path = format!("{}/current", opened.device_path(&args.device));
    let current = handle.read(&path)?.ok_or_else(|| {
        Error::Input(format!(
            "{} is not provisioned: nothing at \"{path}\"; run `rumor new {}`",
            args.device, args.device
        ))
    })?;
    let key = current.data.get("age.key").ok_or_else(|| {
        Error::Input(format!(
            "{} has no age.key in the store; run `rumor new {}`",
            args.device, args.device
        ))
    })?;
    let mut bytes = Zeroizing::new(key.as_bytes().to_vec());
    bytes.push(b'\n');
    eprintln!(
        "rumor: injecting {}'s key into {} (one guestfish launch; a minute under emulation)",
        args.device,
        args.image.display()
    );
    let report = crate::image::inject(&options, &bytes).map_err(image_error)?;
    eprintln!(
        "rumor: wrote {} on {} ({}{}), mode {:o}, verified",
        report.path,
        report.device,
        report.fstype,
        report.label.map(|l| format!(" {l}")).unwrap_or_default(),
        report.mode
    );
    if let Some(expected) = expected {
        let read = ReadOptions {
            image: options.image.clone(),
            path: options.path.clone(),
            partition: options.partition,
        };
        report_problems(
            &args.device,
            &read,
            &crate::ops::verify::image(&expected, &read)?,
        )?;
    }
    crate::device_key::injected(&opened, &args.device)
}

/// `rumor verify-image`.
pub(crate) fn verify_image(
    fleet: &super::fleet::FleetArg,
    args: VerifyImageArgs,
) -> Result<(), Error> {
    let mode = parse_mode(&args.mode, "verify-image")?;
    let partition = parse_partition(&args.key.partition)?;
    let opened = Fleet::open(&fleet.dir()?)?;
    let identities =
        crate::ops::admin_identities(opened.settings.store.kind == crate::fleet::StoreKind::Local)?;
    let handle = opened.store(&identities)?;
    let expected = Expected::load(&opened, handle.as_ref(), &args.device, mode)?;
    let read = ReadOptions {
        image: args.image.clone(),
        path: args.key.path(&opened),
        partition,
    };
    crate::image::verify::check(&read).map_err(|e| e.into_error("verify-image"))?;
    eprintln!(
        "rumor: reading {} (one read-only guestfish launch; a minute under emulation)",
        args.image.display()
    );
    let problems = crate::ops::verify::image(&expected, &read)?;
    report_problems(&args.device, &read, &problems)
}

/// Prints each problem on stdout as `<device>: <problem>`, as `rumor
/// check` does; an error (exit 5) when there is any.
fn report_problems(id: &str, read: &ReadOptions, problems: &[Problem]) -> Result<(), Error> {
    let image = read.image.display();
    if problems.is_empty() {
        eprintln!(
            "rumor: {image}: {} holds {id}'s current key, mode and owner as expected; it opens {id}'s device file and no other",
            read.path
        );
        return Ok(());
    }
    for problem in problems {
        println!("{id}: {problem}");
    }
    let count = match problems.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    Err(Error::Integrity(format!(
        "{image}: {count} with {id}'s key; do not flash it (`rumor inject {id} {image}` writes the current key)"
    )))
}

/// `--mode`, in octal, refused when it would expose the key.
fn parse_mode(text: &str, label: &str) -> Result<u32, Error> {
    let mode = u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .map_err(|_| Error::Usage(format!("--mode \"{text}\" is not an octal mode like 0400")))?;
    crate::image::check_mode(mode).map_err(|e| e.into_error(label))?;
    Ok(mode)
}

/// `--partition`: `auto` or a number.
fn parse_partition(text: &str) -> Result<Partition, Error> {
    match text {
        "auto" => Ok(Partition::Auto),
        n => n.parse().map(Partition::Number).map_err(|_| {
            Error::Usage(format!(
                "--partition \"{n}\" must be auto or a partition number"
            ))
        }),
    }
}

/// `rumor api-key verify`.
pub(crate) fn api_key(command: ApiKeyCommand) -> Result<(), Error> {
    match command {
        ApiKeyCommand::Verify { hash, key } => {
            let key = match key.as_deref() {
                None | Some("-") => {
                    let bytes = super::read_stdin(super::MAX_STDIN_KEY, "the key")?;
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|_| Error::Input("<stdin>: the key is not UTF-8 text".into()))?;
                    Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned())
                }
                Some(k) => Zeroizing::new(k.to_owned()),
            };
            match crate::generate::pbkdf2::verify(&hash, key.as_bytes()) {
                Ok(true) => {
                    eprintln!("rumor: the key matches");
                    Ok(())
                }
                Ok(false) => Err(Error::Mismatch("the key does not match the hash".into())),
                Err(e) => Err(Error::Input(format!("the hash: {e}"))),
            }
        }
    }
}
