//! `.img.zst` images: decompress beside the image, recompress atomically.
//!
//! Hydra and `nix build` ship sd-images zstd-compressed. guestfish needs a
//! raw disk, so the image is decompressed into a temp file in the image's
//! own directory (rather than `$TMPDIR`, often a small tmpfs, while images
//! are gigabytes), injected, then recompressed into a second temp file
//! there and renamed over the original: a crash leaves the old archive or
//! the new one. Both temp files are removed when dropped, on every path.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::error::ImageError;

/// zstd's default level: sd-images compress well and fast at it.
const LEVEL: i32 = 3;

/// Whether `image` is a zstd archive, by its name (`*.zst`).
pub(crate) fn is_compressed(image: &Path) -> bool {
    image.extension().is_some_and(|ext| ext == "zst")
}

/// The directory temp files go in: the image's own.
pub(crate) fn directory(image: &Path) -> PathBuf {
    match image.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temp file that is removed when dropped, and also when a signal stops
/// rumor ([`crate::interrupt`]): a decompressed image holds the device's
/// key once it is injected, and is gigabytes either way.
pub(crate) struct Temp {
    file: NamedTempFile,
    _leftover: crate::interrupt::Leftover,
}

impl std::ops::Deref for Temp {
    type Target = NamedTempFile;
    fn deref(&self) -> &NamedTempFile {
        &self.file
    }
}

impl std::ops::DerefMut for Temp {
    fn deref_mut(&mut self) -> &mut NamedTempFile {
        &mut self.file
    }
}

/// A fresh temp file beside `image`; failure means the directory is not
/// writable, which the rename at the end would need anyway.
pub(crate) fn temp_beside(image: &Path) -> Result<Temp, ImageError> {
    let file = tempfile::Builder::new()
        .prefix(".rumor-image-")
        .suffix(".rumor-tmp")
        .tempfile_in(directory(image))
        .map_err(|e| ImageError::ImageNotWritable {
            image: image.to_path_buf(),
            reason: format!("cannot create a temp file beside it: {e}"),
        })?;
    let _leftover = crate::interrupt::remove_on_exit(file.path());
    Ok(Temp { file, _leftover })
}

/// Decompresses `image` into a temp file beside it.
pub(crate) fn decompress(image: &Path) -> Result<Temp, ImageError> {
    let io_error = |what: &str, e: io::Error| ImageError::ImageIo {
        image: image.to_path_buf(),
        reason: format!("{what}: {e}"),
    };
    let mut raw = temp_beside(image)?;
    let source = File::open(image).map_err(|e| io_error("opening", e))?;
    {
        let mut out = BufWriter::new(raw.as_file_mut());
        zstd::stream::copy_decode(BufReader::new(source), &mut out)
            .map_err(|e| io_error("decompressing (is it zstd?)", e))?;
        out.flush()
            .map_err(|e| io_error("writing the decompressed copy", e))?;
    }
    Ok(raw)
}

/// Compresses `raw` and renames the result over `image`, keeping the
/// archive's permissions.
pub(crate) fn recompress(raw: &Path, image: &Path) -> Result<(), ImageError> {
    let io_error = |what: &str, e: io::Error| ImageError::ImageIo {
        image: image.to_path_buf(),
        reason: format!("{what}: {e}"),
    };
    let mode = fs::metadata(image)
        .map_err(|e| io_error("reading its permissions", e))?
        .permissions()
        .mode();
    let mut packed = temp_beside(image)?;
    {
        let source = File::open(raw).map_err(|e| io_error("reopening the decompressed copy", e))?;
        let mut out = BufWriter::new(packed.as_file_mut());
        zstd::stream::copy_encode(BufReader::new(source), &mut out, LEVEL)
            .map_err(|e| io_error("compressing", e))?;
        out.flush()
            .map_err(|e| io_error("writing the compressed copy", e))?;
    }
    let file = packed.as_file();
    file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| io_error("setting permissions", e))?;
    file.sync_all().map_err(|e| io_error("syncing", e))?;
    let Temp {
        file: packed,
        _leftover,
    } = packed;
    packed
        .persist(image)
        .map_err(|e| io_error("replacing it", e.error))?;
    if let Ok(dir) = File::open(directory(image)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img.zst");
        fs::write(&image, zstd::encode_all(&b"disk bytes"[..], 3).unwrap()).unwrap();
        fs::set_permissions(&image, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(is_compressed(&image));
        assert!(!is_compressed(Path::new("disk.img")));
        let raw = decompress(&image).unwrap();
        assert_eq!(fs::read(raw.path()).unwrap(), b"disk bytes");
        fs::write(raw.path(), b"changed").unwrap();
        recompress(raw.path(), &image).unwrap();
        drop(raw);
        assert_eq!(
            zstd::decode_all(&fs::read(&image).unwrap()[..]).unwrap(),
            b"changed"
        );
        assert_eq!(
            fs::metadata(&image).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn garbage_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img.zst");
        fs::write(&image, b"not zstd").unwrap();
        assert!(matches!(
            decompress(&image),
            Err(ImageError::ImageIo { .. })
        ));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
