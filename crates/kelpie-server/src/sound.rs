//! Sets up the session's sound: the PulseAudio server (a private one for the embedded
//! display) and the Opus source the WebRTC transport streams.

use std::path::Path;
use std::sync::Arc;

use kelpie_desktop::pulse::{self, Pulse};
use kelpie_media::{AudioSettings, AudioSource, MediaClock};

use crate::config::{Config, Switch};

/// The sound server (kept alive with the server) and the source viewers subscribe to.
pub struct Sound {
    /// The PulseAudio server Kelpie started or configured.
    pub pulse: Option<Pulse>,
    /// Opus out and microphone in; `None` without sound.
    pub source: Option<Arc<AudioSource>>,
}

impl Sound {
    /// No sound at all.
    pub fn none() -> Self {
        Self { pulse: None, source: None }
    }

    /// Starts a private PulseAudio in `runtime_dir` (the embedded display's), or without one
    /// attaches to the session's, as `config` says; sound is stamped on the session's `clock`.
    pub fn start(config: &Config, runtime_dir: Option<&Path>, clock: MediaClock) -> Self {
        if config.audio == Switch::Off {
            return Self::none();
        }
        let mic = config.microphone == Switch::On;
        let pulse = if let Some(dir) = runtime_dir {
            match Pulse::start_private(mic, dir) {
                Some(p) => p,
                None => return Self::none(),
            }
        } else {
            Pulse::existing(mic)
        };
        let settings = AudioSettings {
            server: pulse.server().map(str::to_string),
            device: pulse::CAPTURE_DEVICE.to_string(),
            bitrate_kbps: config.audio_bitrate,
            // None when the microphone is off or could not be set up: the answer then says
            // `sendonly` and the page offers no microphone.
            mic_sink: pulse.mic_sink().map(str::to_string),
        };
        Self { pulse: Some(pulse), source: Some(Arc::new(AudioSource::new(settings, clock))) }
    }

    /// Environment for programs of the embedded desktop.
    pub fn env(&self) -> Vec<(String, String)> {
        self.pulse.as_ref().map(Pulse::env).unwrap_or_default()
    }
}
