//! `rumor inject` and `rumor api-key`: the commands that hand secrets to
//! the outside (a disk image, the cloud side).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::image::{ImageError, InjectOptions, Partition};

/// `rumor inject`.
#[derive(Args, Debug)]
pub struct InjectArgs {
    /// The device whose age key is written.
    pub device: String,
    /// The disk image: .img, or .img.zst (decompressed and recompressed).
    pub image: PathBuf,
    /// The key's path inside the image (default: [image] key_path of
    /// rumor.toml, /root/host.scrt.key).
    #[arg(long, value_name = "P")]
    pub path: Option<String>,
    /// `auto` (the ext4 NIXOS_SD partition, else the only Linux
    /// filesystem) or a partition number.
    #[arg(long, value_name = "N|auto", default_value = "auto")]
    pub partition: String,
    /// The key file's mode, in octal.
    #[arg(long, value_name = "MODE", default_value = "0400")]
    pub mode: String,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `rumor api-key …`.
#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
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
    use crate::error::Kind;
    let kind = match e {
        ImageError::GuestfishMissing
        | ImageError::Guestfish { .. }
        | ImageError::ImageIo { .. }
        | ImageError::ImageNotWritable { .. } => Kind::Io,
        ImageError::VerifyFailed { .. } => Kind::Integrity,
        _ => Kind::Input,
    };
    Error::Entry {
        label: "inject".into(),
        message: e.to_string(),
        kind,
    }
}

/// `rumor inject`.
pub fn inject(fleet: &super::fleet::FleetArg, args: InjectArgs) -> Result<(), Error> {
    // Checked before the fleet is opened: a mode that would expose the key
    // is refused whatever else is wrong.
    let mode = u32::from_str_radix(args.mode.trim_start_matches("0o"), 8).map_err(|_| {
        Error::Usage(format!(
            "--mode \"{}\" is not an octal mode like 0400",
            args.mode
        ))
    })?;
    crate::image::check_mode(mode).map_err(image_error)?;
    let dir = match &fleet.fleet {
        Some(d) => d.clone(),
        None => super::current_dir()?,
    };
    let opened = crate::fleet::Fleet::open(&dir)?;
    crate::device::load(&opened, &args.device)?;
    let partition = match args.partition.as_str() {
        "auto" => Partition::Auto,
        n => Partition::Number(n.parse().map_err(|_| {
            Error::Usage(format!(
                "--partition \"{n}\" must be auto or a partition number"
            ))
        })?),
    };
    let options = InjectOptions {
        image: args.image.clone(),
        path: args
            .path
            .clone()
            .unwrap_or_else(|| opened.settings.image.key_path.clone()),
        partition,
        mode,
        dry_run: args.dry_run,
    };
    if args.dry_run {
        for line in crate::image::plan(&options).map_err(image_error)? {
            println!("{line}");
        }
        return Ok(());
    }
    let identities = crate::ops::admin_identities(opened.settings.store.kind == "local")?;
    let handle = opened.store(&identities)?;
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
    crate::device_key::injected(&opened, &args.device)
}

/// `rumor api-key verify`.
pub fn api_key(command: ApiKeyCommand) -> Result<(), Error> {
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
