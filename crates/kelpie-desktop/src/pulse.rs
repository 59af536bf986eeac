//! The session's sound server.
//!
//! With an embedded display Kelpie starts a private PulseAudio server (its own runtime
//! directory under /tmp, a child that dies with Kelpie like Xvfb) whose default sink is a
//! null sink, `kelpie_out`, whose monitor Kelpie streams to viewers. The microphone of a
//! viewer plays into a second null sink, `kelpie_mic`, whose monitor is remapped into the
//! source `kelpie_mic_in`, the default source, so programs in the session record it.
//!
//! With an existing display the server named by the environment (`PULSE_SERVER`,
//! `XDG_RUNTIME_DIR`) is used, and the microphone modules are loaded into it with `pactl`
//! (and unloaded on exit).

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
    /// Modules loaded into a server we did not start.
    modules: Vec<String>,
}

impl Pulse {
    /// Starts a private PulseAudio server. Returns `None` (after a warning that names the
    /// Debian package) when PulseAudio is not installed or fails to start.
    pub fn start_private(microphone: bool) -> Option<Self> {
        if which("pulseaudio").is_none() {
            tracing::warn!(
                "'pulseaudio' is not installed: running without sound (install the Debian packages \
                 pulseaudio and gstreamer1.0-pulseaudio)"
            );
            return None;
        }
        match Self::try_start_private(microphone) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("PulseAudio did not start, running without sound: {e}");
                None
            }
        }
    }

    fn try_start_private(microphone: bool) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("kelpie-pulse-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let socket = dir.join("native");
        let mut cmd = Command::new("pulseaudio");
        cmd.args(["--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no"])
            .args(["--disallow-exit", "--disallow-module-loading=no", "--log-target=stderr"])
            .arg(format!("--load=module-native-protocol-unix socket={} auth-anonymous=1", socket.display()))
            .arg(format!("--load=module-null-sink sink_name={OUT_SINK} rate=48000 channels=2"))
            .arg(format!("--load=module-null-sink sink_name={MIC_SINK} rate=48000 channels=1"))
            .arg(format!(
                "--load=module-remap-source master={MIC_SINK}.monitor source_name={MIC_SOURCE} \
                 channels=1 channel_map=mono"
            ))
            .arg("--load=module-always-sink")
            .env("XDG_RUNTIME_DIR", &dir)
            .env("PULSE_RUNTIME_PATH", &dir)
            .env("PULSE_STATE_PATH", &dir)
            .env("HOME", &dir)
            .env_remove("PULSE_SERVER")
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
        let mut child = cmd.spawn().map_err(|e| format!("cannot run pulseaudio: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("pulseaudio exited ({status})"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&dir);
                return Err("pulseaudio did not create its socket within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let server = format!("unix:{}", socket.display());
        let pulse = Self { server: Some(server), child: Some(child), dir: Some(dir), modules: Vec::new() };
        // The socket appears before the modules after it are loaded; pactl waits for them.
        pulse.pactl(&["set-default-sink", OUT_SINK])?;
        if microphone {
            pulse.pactl(&["set-default-source", MIC_SOURCE])?;
        }
        tracing::info!("started PulseAudio at {}", pulse.server.as_deref().unwrap_or(""));
        Ok(pulse)
    }

    /// Uses the server named by the environment. With `microphone`, adds the microphone
    /// source to it (needs `pactl`, Debian package pulseaudio-utils).
    pub fn existing(microphone: bool) -> Self {
        let mut pulse = Self { server: None, child: None, dir: None, modules: Vec::new() };
        if microphone {
            if which("pactl").is_none() {
                tracing::warn!(
                    "'pactl' is not installed: the microphone is not offered to programs \
                     (install the Debian package pulseaudio-utils)"
                );
                return pulse;
            }
            let sink = format!("sink_name={MIC_SINK}");
            let remap = format!("master={MIC_SINK}.monitor");
            let source = format!("source_name={MIC_SOURCE}");
            for args in [
                &["load-module", "module-null-sink", &sink, "rate=48000", "channels=1"][..],
                &["load-module", "module-remap-source", &remap, &source, "channels=1", "channel_map=mono"][..],
            ] {
                match pulse.pactl_output(args) {
                    Ok(id) => pulse.modules.push(id.trim().to_string()),
                    Err(e) => {
                        tracing::warn!("cannot add the microphone source to PulseAudio: {e}");
                        return pulse;
                    }
                }
            }
            if let Err(e) = pulse.pactl(&["set-default-source", MIC_SOURCE]) {
                tracing::warn!("cannot make {MIC_SOURCE} the default source: {e}");
            }
        }
        pulse
    }

    /// `PULSE_SERVER` for programs of this session, when Kelpie runs the server.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The runtime directory of a private server.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Environment for programs of this session (empty for an existing server).
    pub fn env(&self) -> Vec<(String, String)> {
        self.server.iter().map(|s| ("PULSE_SERVER".to_string(), s.clone())).collect()
    }

    fn pactl(&self, args: &[&str]) -> Result<(), String> {
        self.pactl_output(args).map(|_| ())
    }

    fn pactl_output(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("pactl");
        cmd.args(args).stdin(Stdio::null());
        if let Some(s) = &self.server {
            cmd.env("PULSE_SERVER", s);
        }
        let out = cmd.output().map_err(|e| format!("cannot run pactl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pactl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Pulse {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.modules).iter().rev() {
            let _ = self.pactl(&["unload-module", id]);
        }
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
        let pulse = Pulse::start_private(true).expect("pulseaudio starts");
        let dir = pulse.dir().unwrap().to_path_buf();
        let info = pulse.pactl_output(&["info"]).unwrap();
        assert!(info.contains(&format!("Default Sink: {OUT_SINK}")), "{info}");
        assert!(info.contains(&format!("Default Source: {MIC_SOURCE}")), "{info}");
        drop(pulse);
        assert!(!dir.exists(), "runtime directory removed");
    }
}
