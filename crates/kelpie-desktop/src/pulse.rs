//! The session's sound server.
//!
//! With an embedded display Kelpie starts a private PulseAudio server (a child that dies with
//! Kelpie like Xvfb) whose default sink is a null sink, `kelpie_out`, whose monitor Kelpie streams to viewers. The microphone of a
//! viewer plays into a second null sink, `kelpie_mic`, whose monitor is remapped into the
//! source `kelpie_mic_in`, the default source, so programs in the session record it.
//!
//! The private server is the session's alone: its socket and files are in `pulse/` (0700) of
//! Kelpie's [`crate::runtime`] directory, no anonymous client is admitted (a client must run
//! as Kelpie's user or present the cookie, `pulse/cookie`, 0600, named by `PULSE_COOKIE` in
//! the session's environment), and no module can be loaded once it has started: every module
//! it needs is loaded at start-up.
//!
//! With an existing display the server named by the environment (`PULSE_SERVER`,
//! `XDG_RUNTIME_DIR`) is used, and the microphone modules are loaded into it with `pactl`
//! (and unloaded on exit, when the default source the user had is restored). Their names
//! are `kelpie_mic` / `kelpie_mic_in` unless those are taken (another Kelpie on the same
//! server, or one that was killed before it could clean up), then `kelpie_mic_2` and so on.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::which;

/// The sink programs play into (embedded server).
pub const OUT_SINK: &str = "kelpie_out";
/// The sink viewers' microphones play into.
pub const MIC_SINK: &str = "kelpie_mic";
/// The source programs record the microphone from.
pub const MIC_SOURCE: &str = "kelpie_mic_in";
/// The PulseAudio source Kelpie captures: the monitor of the default sink.
pub const CAPTURE_DEVICE: &str = "@DEFAULT_MONITOR@";

/// The sound server of the session.
pub struct Pulse {
    /// Value for `PULSE_SERVER`, e.g. `unix:/tmp/kelpie-pulse-1234/native`.
    server: Option<String>,
    child: Option<Child>,
    dir: Option<PathBuf>,
    /// The cookie file clients of a private server may present (`PULSE_COOKIE`).
    cookie: Option<PathBuf>,
    /// Modules loaded into a server we did not start.
    modules: Vec<String>,
    /// The sink viewers' microphones play into, when the microphone is set up.
    mic_sink: Option<String>,
    /// The source programs record the microphone from (the default source).
    mic_source: Option<String>,
    /// The default source before Kelpie replaced it (existing server), restored on exit.
    previous_source: Option<String>,
}

impl Pulse {
    /// Starts a private PulseAudio server with its files in `runtime_dir` (Kelpie's private
    /// runtime directory). Returns `None` (after a warning that names the Debian package)
    /// when PulseAudio is not installed or fails to start.
    pub fn start_private(microphone: bool, runtime_dir: &Path) -> Option<Self> {
        if which("pulseaudio").is_none() {
            tracing::warn!(
                "'pulseaudio' is not installed: running without sound (install the Debian packages \
                 pulseaudio and gstreamer1.0-pulseaudio)"
            );
            return None;
        }
        match Self::try_start_private(microphone, runtime_dir) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("PulseAudio did not start, running without sound: {}", e.why());
                None
            }
        }
    }

    fn try_start_private(microphone: bool, runtime_dir: &Path) -> Result<Self, PulseError> {
        let dir = runtime_dir.join("pulse");
        crate::runtime::make_private_dir(&dir)
            .map_err(|e| PulseError::Dir { path: dir.clone(), source: e.into() })?;
        // From here on the directory is ours: removed if the rest fails.
        let mut pulse = Self::none();
        pulse.dir = Some(dir.clone());
        let cookie = dir.join("cookie");
        let mut secret = [0u8; COOKIE_LENGTH];
        getrandom::fill(&mut secret).map_err(|e| PulseError::Dir {
            path: cookie.clone(),
            source: std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)).into(),
        })?;
        crate::runtime::write_new_private_file(&cookie, &secret)
            .map_err(|e| PulseError::Dir { path: cookie.clone(), source: e.into() })?;
        let socket = dir.join("native");
        let mut cmd = Command::new("pulseaudio");
        cmd.args(["--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no"])
            .args(["--disallow-exit", "--disallow-module-loading", "--log-target=stderr"])
            .arg(format!(
                "--load=module-native-protocol-unix socket={} auth-anonymous=0 auth-cookie-enabled=1 \
                 auth-cookie={}",
                socket.display(),
                cookie.display()
            ))
            .arg(format!("--load=module-null-sink sink_name={OUT_SINK} rate=48000 channels=2"))
            .arg(format!("--load=module-null-sink sink_name={MIC_SINK} rate=48000 channels=1"))
            .arg(format!(
                "--load=module-remap-source master={MIC_SINK}.monitor source_name={MIC_SOURCE} \
                 channels=1 channel_map=mono"
            ))
            .arg("--load=module-always-sink");
        crate::scrub_env(&mut cmd);
        cmd.env("XDG_RUNTIME_DIR", &dir)
            .env("PULSE_RUNTIME_PATH", &dir)
            .env("PULSE_STATE_PATH", &dir)
            .env("HOME", &dir)
            .env_remove("PULSE_SERVER")
            .env_remove("PULSE_COOKIE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| PulseError::Run { program: "pulseaudio", source })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(PulseError::Exited(status));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PulseError::NoSocket);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pulse.server = Some(format!("unix:{}", socket.display()));
        pulse.cookie = Some(cookie);
        pulse.child = Some(child);
        // The socket appears before the modules after it are loaded; pactl waits for them.
        pulse.pactl(&["set-default-sink", OUT_SINK])?;
        if microphone {
            pulse.pactl(&["set-default-source", MIC_SOURCE])?;
            pulse.mic_sink = Some(MIC_SINK.to_string());
            pulse.mic_source = Some(MIC_SOURCE.to_string());
        }
        tracing::info!("started PulseAudio at {}", pulse.server.as_deref().unwrap_or(""));
        Ok(pulse)
    }

    fn none() -> Self {
        Self {
            server: None,
            child: None,
            dir: None,
            cookie: None,
            modules: Vec::new(),
            mic_sink: None,
            mic_source: None,
            previous_source: None,
        }
    }

    /// Uses the server named by the environment. With `microphone`, adds the microphone
    /// source to it and makes it the default source (needs `pactl`, Debian package
    /// pulseaudio-utils); without `pactl` or when the server refuses, there is no microphone.
    pub fn existing(microphone: bool) -> Self {
        let mut pulse = Self::none();
        if microphone {
            if which("pactl").is_none() {
                tracing::warn!(
                    "'pactl' is not installed: the microphone is not offered to programs \
                     (install the Debian package pulseaudio-utils)"
                );
                return pulse;
            }
            if let Err(e) = pulse.add_microphone() {
                tracing::warn!(
                    "cannot add the microphone source to PulseAudio, running without it: {}",
                    e.why()
                );
                pulse.remove_microphone();
            }
        }
        pulse
    }

    /// Loads the microphone's null sink and remapped source into an existing server under
    /// names nobody uses yet and makes the source the default.
    fn add_microphone(&mut self) -> Result<(), PulseError> {
        let sinks = self.pactl_output(&["list", "short", "sinks"])?;
        let sources = self.pactl_output(&["list", "short", "sources"])?;
        let (sink, source) = free_mic_names(&short_list_names(&sinks), &short_list_names(&sources))
            .ok_or(PulseError::NamesTaken)?;
        self.previous_source = default_source(&self.pactl_output(&["info"])?);
        let sink_arg = format!("sink_name={sink}");
        let remap = format!("master={sink}.monitor");
        let source_arg = format!("source_name={source}");
        for args in [
            &["load-module", "module-null-sink", &sink_arg, "rate=48000", "channels=1"][..],
            &["load-module", "module-remap-source", &remap, &source_arg, "channels=1", "channel_map=mono"][..],
        ] {
            let id = self.pactl_output(args)?;
            self.modules.push(id.trim().to_string());
        }
        self.mic_sink = Some(sink);
        self.mic_source = Some(source.clone());
        if let Err(e) = self.pactl(&["set-default-source", &source]) {
            tracing::warn!("cannot make {source} the default source: {}", e.why());
        }
        tracing::info!(
            sink = self.mic_sink.as_deref().unwrap_or(""),
            source = %source,
            "viewers' microphones are the PulseAudio source {source}"
        );
        Ok(())
    }

    /// Gives the user's default source back and unloads what Kelpie loaded.
    fn remove_microphone(&mut self) {
        if let (Some(ours), Some(previous)) = (&self.mic_source, &self.previous_source) {
            let still_ours = self.pactl_output(&["info"]).ok().and_then(|i| default_source(&i));
            if still_ours.as_deref() == Some(ours.as_str()) && previous != ours {
                let _ = self.pactl(&["set-default-source", previous]);
            }
        }
        for id in std::mem::take(&mut self.modules).iter().rev() {
            let _ = self.pactl(&["unload-module", id]);
        }
        self.mic_sink = None;
        self.mic_source = None;
    }

    /// The sink viewers' microphones play into; `None` without a microphone.
    pub fn mic_sink(&self) -> Option<&str> {
        self.mic_sink.as_deref()
    }

    /// The source programs record viewers' microphones from; `None` without a microphone.
    pub fn mic_source(&self) -> Option<&str> {
        self.mic_source.as_deref()
    }

    /// `PULSE_SERVER` for programs of this session, when Kelpie runs the server.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The runtime directory of a private server.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Whether the private server has exited, and how; reported once. `None` for a server
    /// Kelpie did not start.
    pub fn poll_exit(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().ok()??;
        self.child = None;
        Some(format!(
            "PulseAudio ({}) {}",
            self.server.as_deref().unwrap_or("private server"),
            crate::describe(status)
        ))
    }

    /// Environment for programs of this session: `PULSE_SERVER` and `PULSE_COOKIE` of a
    /// private server; empty for an existing server.
    pub fn env(&self) -> Vec<(String, String)> {
        let server = self.server.iter().map(|s| ("PULSE_SERVER".to_string(), s.clone()));
        let cookie = self.cookie.iter().map(|c| ("PULSE_COOKIE".to_string(), c.display().to_string()));
        server.chain(cookie).collect()
    }

    fn pactl(&self, args: &[&str]) -> Result<(), PulseError> {
        self.pactl_output(args).map(|_| ())
    }

    fn pactl_output(&self, args: &[&str]) -> Result<String, PulseError> {
        let mut cmd = Command::new("pactl");
        cmd.args(args).stdin(Stdio::null());
        crate::scrub_env(&mut cmd);
        cmd.envs(self.env());
        let out = cmd.output().map_err(|source| PulseError::Run { program: "pactl", source })?;
        if !out.status.success() {
            return Err(PulseError::Pactl {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Why the private PulseAudio server or one of its modules could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PulseError {
    /// Its private directory or a file in it could not be made.
    #[error("cannot create {}", path.display())]
    Dir {
        /// The directory or file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A PulseAudio program could not be run.
    #[error("cannot run {program} (install the Debian package pulseaudio-utils / pulseaudio)")]
    Run {
        /// `pulseaudio` or `pactl`.
        program: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server exited while starting.
    #[error("pulseaudio exited ({0})")]
    Exited(std::process::ExitStatus),
    /// Every name Kelpie would give the microphone's sink and source is in use.
    #[error("every kelpie_mic name is taken")]
    NamesTaken,
    /// The server never made its socket.
    #[error("pulseaudio did not create its socket within 10 s")]
    NoSocket,
    /// `pactl` refused a command.
    #[error("pactl {args} failed: {stderr}")]
    Pactl {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
}

impl PulseError {
    /// The message with its cause, for the log.
    fn why(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }
}

/// The length of a PulseAudio authentication cookie (`PA_NATIVE_COOKIE_LENGTH`).
const COOKIE_LENGTH: usize = 256;

/// The names (second column) of `pactl list short sinks|sources`.
fn short_list_names(list: &str) -> Vec<&str> {
    list.lines().filter_map(|l| l.split('\t').nth(1)).collect()
}

/// `Default Source:` of `pactl info`.
fn default_source(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("Default Source:"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The first free pair of `kelpie_mic` / `kelpie_mic_in`, `kelpie_mic_2` / `kelpie_mic_in_2`, ….
fn free_mic_names(sinks: &[&str], sources: &[&str]) -> Option<(String, String)> {
    (1..100).find_map(|n| {
        let suffix = if n == 1 { String::new() } else { format!("_{n}") };
        let sink = format!("{MIC_SINK}{suffix}");
        let source = format!("{MIC_SOURCE}{suffix}");
        let monitor = format!("{sink}.monitor");
        let taken = sinks.contains(&sink.as_str())
            || sources.contains(&source.as_str())
            || sources.contains(&monitor.as_str());
        (!taken).then_some((sink, source))
    })
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.remove_microphone();
        if let Some(child) = self.child.as_mut() {
            crate::stop(child);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_server_has_the_kelpie_devices() {
        if which("pulseaudio").is_none() || which("pactl").is_none() {
            eprintln!("skipped: pulseaudio is not installed");
            return;
        }
        let runtime = crate::runtime::RuntimeDir::create(None).unwrap();
        let pulse = Pulse::start_private(true, runtime.path()).expect("pulseaudio starts");
        let dir = pulse.dir().unwrap().to_path_buf();
        assert_eq!(dir, runtime.path().join("pulse"));
        let info = pulse.pactl_output(&["info"]).unwrap();
        assert!(info.contains(&format!("Default Sink: {OUT_SINK}")), "{info}");
        assert!(info.contains(&format!("Default Source: {MIC_SOURCE}")), "{info}");
        assert_eq!(pulse.mic_sink(), Some(MIC_SINK));
        assert_eq!(pulse.mic_source(), Some(MIC_SOURCE));
        drop(pulse);
        assert!(!dir.exists(), "runtime directory removed");
    }

    #[test]
    fn private_server_is_closed_to_strangers_and_to_new_modules() {
        use std::os::unix::fs::MetadataExt as _;
        if which("pulseaudio").is_none() || which("pactl").is_none() {
            eprintln!("skipped: pulseaudio is not installed");
            return;
        }
        let runtime = crate::runtime::RuntimeDir::create(None).unwrap();
        let pulse = Pulse::start_private(false, runtime.path()).expect("pulseaudio starts");
        let dir = pulse.dir().unwrap();
        let cookie = dir.join("cookie");
        assert_eq!(std::fs::metadata(dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&cookie).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&cookie).unwrap().len(), COOKIE_LENGTH as u64);
        let env = pulse.env();
        assert_eq!(env[0], ("PULSE_SERVER".into(), format!("unix:{}", dir.join("native").display())));
        assert_eq!(env[1], ("PULSE_COOKIE".into(), cookie.display().to_string()));
        // No module can be added once it runs (the microphone's are loaded at start-up).
        let e = pulse.pactl(&["load-module", "module-null-sink", "sink_name=intruder"]).unwrap_err();
        assert!(matches!(e, PulseError::Pactl { .. }), "{}", e.why());
        let modules = pulse.pactl_output(&["list", "short", "modules"]).unwrap();
        assert!(!modules.contains("intruder"), "{modules}");
        assert!(modules.contains("auth-anonymous=0"), "{modules}");
        // Clients of other users: tests/e2e/shared-node.test.mjs.
    }

    #[test]
    fn microphone_names_avoid_those_taken() {
        let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(free_mic_names(&["out"], &["out.monitor"]), pair("kelpie_mic", "kelpie_mic_in"));
        assert_eq!(
            free_mic_names(&["kelpie_mic"], &["kelpie_mic.monitor"]),
            pair("kelpie_mic_2", "kelpie_mic_in_2")
        );
        // A source left behind alone also moves the pair on.
        assert_eq!(
            free_mic_names(&["kelpie_mic_2"], &["kelpie_mic_in"]),
            pair("kelpie_mic_3", "kelpie_mic_in_3")
        );
        let list = "0\tsession_out\tmodule-null-sink.c\ts16le 2ch 48000Hz\tIDLE\n\
                    1\tkelpie_mic\tmodule-null-sink.c\ts16le 1ch 48000Hz\tIDLE\n";
        assert_eq!(short_list_names(list), ["session_out", "kelpie_mic"]);
        let info = "Server Name: pulseaudio\nDefault Sink: out\nDefault Source: user_mic\n";
        assert_eq!(default_source(info).as_deref(), Some("user_mic"));
        assert_eq!(default_source("Default Source: \n"), None);
    }
}
