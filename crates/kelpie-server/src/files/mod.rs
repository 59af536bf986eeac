//! File transfer between viewers and the desktop: uploads into `--upload-dir`, downloads and a
//! listing of `--download-dir` (both `~/Desktop` by default). Transfers are plain HTTP
//! requests (`api/files`, [`routes`]) on their own connections, never the signalling
//! WebSocket, so a large file does not hold up anything the viewer's socket carries.
//! Names are checked by [`kelpie_protocol::files::check_name`]; the disk side (part files,
//! no overwriting, no special files) is in [`disk`].

pub mod disk;
pub mod permit;
mod routes;
pub mod tickets;
mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::ValueEnum;

pub use routes::routes;
pub use watch::watch;

use crate::config::Switch;
use crate::prometheus::{self, Kind};

/// The flags of file transfer (flattened into [`crate::Config`]).
#[derive(Debug, Clone, clap::Args)]
pub struct FilesArgs {
    /// File transfer: viewers upload into --upload-dir and download from --download-dir.
    #[arg(long = "files", env = "KELPIE_FILES", value_enum, default_value_t = Switch::On)]
    pub files: Switch,

    /// Where uploads go (made 0700 if missing). Default: ~/Desktop.
    #[arg(long, env = "KELPIE_UPLOAD_DIR", value_name = "DIR")]
    pub upload_dir: Option<PathBuf>,

    /// The folder viewers may download from. Default: the upload directory.
    #[arg(long, env = "KELPIE_DOWNLOAD_DIR", value_name = "DIR")]
    pub download_dir: Option<PathBuf>,

    /// Largest upload: bytes, or with a unit (KiB, MiB, GiB).
    #[arg(long, env = "KELPIE_UPLOAD_MAX", default_value = "1GiB", value_parser = parse_bytes)]
    pub upload_max: u64,

    /// Who may upload: the viewer holding control, any full-access viewer, everyone (view-only
    /// viewers too), or nobody.
    #[arg(long, env = "KELPIE_UPLOAD", value_enum, default_value_t = UploadAccess::Control)]
    pub upload: UploadAccess,
}

/// `--upload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UploadAccess {
    /// The viewer holding control (every full-access viewer with `--shared-control`), told
    /// by its upload ticket.
    Control,
    /// Viewers with the full token: those that may take control.
    Full,
    /// View-only viewers too.
    Everyone,
    /// Nobody: downloads only.
    Off,
}

/// `1073741824`, `512KiB`, `100MiB`, `1GiB` (also `K`, `M`, `G`, `KB`…, all powers of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: give a size like 1073741824, 100MiB or 1GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use KiB, MiB or GiB")),
    };
    let bytes =
        n.checked_shl(shift).filter(|b| b >> shift == n).ok_or_else(|| format!("{s:?}: too large"))?;
    if bytes == 0 {
        return Err("the upload limit must be above 0 (turn uploads off with --upload off)".into());
    }
    Ok(bytes)
}

/// Why a transfer was refused: the `reason` label of `kelpie_files_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--files off`, or uploads with `--upload off`.
    Off,
    /// The viewer's token does not allow uploads.
    Access,
    /// `--upload control`: no ticket, or a forged or stale one.
    Ticket,
    /// `--upload control`: the viewer does not hold control.
    Control,
    /// A name [`kelpie_protocol::files::check_name`] refuses.
    Name,
    /// The file exists and overwriting was not asked for.
    Exists,
    /// Not a regular file (a FIFO, device, directory or symbolic link).
    Special,
    /// Larger than `--upload-max`.
    TooLarge,
    /// No such file to download.
    Missing,
    /// The disk said no (full, read-only, permissions).
    Io,
}

impl Refusal {
    const ALL: [Self; 10] = [
        Self::Off,
        Self::Access,
        Self::Ticket,
        Self::Control,
        Self::Name,
        Self::Exists,
        Self::Special,
        Self::TooLarge,
        Self::Missing,
        Self::Io,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Access => "access",
            Self::Ticket => "ticket",
            Self::Control => "control",
            Self::Name => "name",
            Self::Exists => "exists",
            Self::Special => "special",
            Self::TooLarge => "too_large",
            Self::Missing => "missing",
            Self::Io => "io",
        }
    }
}

/// Counters of file transfer.
#[derive(Debug, Default)]
pub struct FileCounters {
    uploaded: AtomicU64,
    uploaded_bytes: AtomicU64,
    downloaded: AtomicU64,
    downloaded_bytes: AtomicU64,
    cancelled: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl FileCounters {
    fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Where files go and come from, with `--files on`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Uploads land here.
    pub upload_dir: PathBuf,
    /// Downloads come from here.
    pub download_dir: PathBuf,
    /// Largest upload, bytes.
    pub upload_max: u64,
    /// Who may upload.
    pub upload: UploadAccess,
}

/// File transfer's settings, counters and the viewers' upload tickets.
#[derive(Debug, Default)]
pub struct Files {
    settings: Option<Settings>,
    counters: FileCounters,
    /// The connected viewers' upload tickets.
    pub tickets: tickets::Tickets,
}

impl Files {
    /// Reads the flags and makes the directories (0700) if they are missing. `home` is where
    /// `~/Desktop` is, by default.
    pub fn new(args: &FilesArgs, home: Option<PathBuf>) -> anyhow::Result<Self> {
        if args.files == Switch::Off {
            return Ok(Self::default());
        }
        let upload_dir = match (&args.upload_dir, home) {
            (Some(dir), _) => dir.clone(),
            (None, Some(home)) => home.join("Desktop"),
            (None, None) => anyhow::bail!(
                "file transfer needs a folder and HOME is not set: give --upload-dir DIR, or --files off"
            ),
        };
        let download_dir = args.download_dir.clone().unwrap_or_else(|| upload_dir.clone());
        disk::prepare_dir(&upload_dir, "--upload-dir")?;
        disk::prepare_dir(&download_dir, "--download-dir")?;
        Ok(Self {
            settings: Some(Settings {
                upload_dir,
                download_dir,
                upload_max: args.upload_max,
                upload: args.upload,
            }),
            counters: FileCounters::default(),
            tickets: tickets::Tickets::default(),
        })
    }

    /// The settings, with `--files on`.
    pub fn settings(&self) -> Option<&Settings> {
        self.settings.as_ref()
    }

    /// Its counters in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut String) {
        let r = Ordering::Relaxed;
        let c = &self.counters;
        prometheus::counters(
            out,
            [
                ("kelpie_files_uploaded_total", "Files uploaded.", c.uploaded.load(r)),
                ("kelpie_files_uploaded_bytes_total", "Bytes of files uploaded.", c.uploaded_bytes.load(r)),
                ("kelpie_files_downloaded_total", "Downloads started.", c.downloaded.load(r)),
                (
                    "kelpie_files_downloaded_bytes_total",
                    "Bytes of files sent to viewers.",
                    c.downloaded_bytes.load(r),
                ),
                (
                    "kelpie_files_cancelled_total",
                    "Uploads that ended before their last byte (cancelled or cut off); nothing was kept.",
                    c.cancelled.load(r),
                ),
            ],
        );
        prometheus::header(
            out,
            "kelpie_files_refused_total",
            Kind::Counter,
            "File transfers refused, by reason (off, access, ticket, control, name, exists, special, too_large, missing, io).",
        );
        for why in Refusal::ALL {
            prometheus::sample(
                out,
                "kelpie_files_refused_total",
                &[("reason", why.label())],
                c.refused[why as usize].load(r),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("100MiB"), Ok(100 << 20));
        assert_eq!(parse_bytes("512 k"), Ok(512 << 10));
        assert!(parse_bytes("0").unwrap_err().contains("--upload off"));
        assert!(parse_bytes("1PiB").unwrap_err().contains("unit"));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999999GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn refusals_are_counted_under_their_label() {
        let files = Files::default();
        files.counters.refused(Refusal::Name);
        files.counters.refused(Refusal::Name);
        let mut out = String::new();
        files.write_metrics(&mut out);
        assert!(out.contains("kelpie_files_refused_total{reason=\"name\"} 2\n"), "{out}");
        assert!(out.contains("kelpie_files_refused_total{reason=\"special\"} 0\n"), "{out}");
    }
}
