//! Starting the session's gamepads (`--gamepads`, `--gamepad-backend`, crate
//! `kelpie-gamepad`): their sockets and the interposer go in `gamepad/` of the embedded
//! display's runtime directory (0700, so other users can neither read the pads nor replace
//! the library), and the programs Kelpie starts get the environment that loads it, unless the
//! pads are kernel devices made through `/dev/uinput`. Their rumble goes to the viewer
//! driving the pad as a `rumble` message.

use std::path::Path;
use std::sync::{Arc, Weak};

use kelpie_gamepad::Backend;
use kelpie_protocol::{GamepadRumble, ServerMessage};

use crate::AppState;
use crate::config::{Config, GamepadBackend, Switch};

/// The uinput device the `uinput` backend writes to.
pub const UINPUT: &str = "/dev/uinput";

/// The backend `--gamepad-backend` asks for, given whether `uinput` can be written.
pub fn choose(requested: GamepadBackend, uinput: &Path) -> anyhow::Result<Backend> {
    let writable = kelpie_gamepad::uinput::writable(uinput);
    match requested {
        GamepadBackend::Interposer => Ok(Backend::Interposer),
        GamepadBackend::Auto if !writable => Ok(Backend::Interposer),
        GamepadBackend::Auto | GamepadBackend::Uinput if writable => {
            Ok(Backend::Uinput(uinput.to_path_buf()))
        }
        _ => anyhow::bail!(
            "--gamepad-backend uinput: cannot open {} for writing (load the uinput module, give \
             this user access to it, or use --gamepad-backend auto or interposer)",
            uinput.display()
        ),
    }
}

/// The session's pads, or `None` when `--gamepads off` or the display is not Kelpie's own
/// (no runtime directory, no program Kelpie starts to give them to).
pub fn start(config: &Config, runtime: Option<&Path>) -> anyhow::Result<Option<kelpie_gamepad::Gamepads>> {
    if config.gamepads == Switch::Off {
        return Ok(None);
    }
    let Some(runtime) = runtime else {
        tracing::info!(
            "gamepads are off with --display: Kelpie starts no program to give them to \
             (see \"Gamepads\" in docs/deployment.md)"
        );
        return Ok(None);
    };
    let backend = choose(config.gamepad_backend, Path::new(UINPUT))?;
    let dir = runtime.join("gamepad");
    let g = kelpie_gamepad::Gamepads::start(&dir, backend).map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot set up the gamepads in {} (or start with --gamepads off)",
            dir.display()
        ))
    })?;
    match g.backend() {
        Backend::Interposer => tracing::info!(
            "gamepads: /dev/input/js0..3 and /dev/input/event1000..1003 for the programs Kelpie \
             starts (LD_PRELOAD {})",
            dir.display()
        ),
        Backend::Uinput(path) => {
            tracing::info!("gamepads: kernel devices through {} as each pad is first used", path.display())
        }
    }
    Ok(Some(g))
}

/// Sends the pads' rumble to the viewer driving each (the state is held weakly: the hub's
/// threads must not keep the server alive).
pub fn send_rumble(g: &kelpie_gamepad::Gamepads, state: Weak<AppState>) {
    g.on_rumble(Box::new(move |viewer, index, r| {
        let Some(state) = state.upgrade() else { return };
        let msg =
            GamepadRumble { index: index as u8, strong: r.strong, weak: r.weak, duration_ms: r.duration_ms };
        if msg.is_valid() {
            state.viewers.tell(viewer, ServerMessage::Rumble(msg));
        }
    }));
}

/// Hands the rumble of `state`'s pads to their viewers, when there are pads.
pub fn wire(state: &Arc<AppState>) {
    if let Some(g) = &state.gamepads {
        send_rumble(g, Arc::downgrade(state));
    }
}

/// The environment of a program Kelpie starts: the interposer ahead of any `LD_PRELOAD`
/// Kelpie itself was given, where the sockets are, and the event devices for SDL2
/// (`SDL_JOYSTICK_DEVICE`, unless Kelpie was given one). None with kernel devices (uinput):
/// programs find those themselves, and the interposer's paths would hide them.
pub fn app_env(g: &kelpie_gamepad::Gamepads) -> Vec<(String, String)> {
    match g.backend() {
        Backend::Interposer => {
            let env = preload_env(g.env(), std::env::var("LD_PRELOAD").ok());
            sdl_env(env, std::env::var_os(kelpie_gamepad::SDL_DEVICES_VAR).is_some())
        }
        Backend::Uinput(_) => Vec::new(),
    }
}

/// Tells SDL2 where the event devices are, unless the user already did (`user_set`).
fn sdl_env(mut env: Vec<(String, String)>, user_set: bool) -> Vec<(String, String)> {
    if !user_set {
        env.push((kelpie_gamepad::SDL_DEVICES_VAR.into(), kelpie_gamepad::event_device_paths()));
    }
    env
}

fn preload_env(mut env: Vec<(String, String)>, inherited: Option<String>) -> Vec<(String, String)> {
    if let Some(old) = inherited.filter(|s| !s.trim().is_empty()) {
        for (k, v) in &mut env {
            if k == "LD_PRELOAD" {
                *v = format!("{v} {old}");
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_uinput_only_where_it_is_writable_and_uinput_insists() {
        let dir = std::env::temp_dir().join(format!("kelpie-gamepad-backend-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("no-uinput");
        let present = dir.join("uinput");
        std::fs::write(&present, b"").unwrap();
        assert_eq!(choose(GamepadBackend::Auto, &missing).unwrap(), Backend::Interposer);
        assert_eq!(choose(GamepadBackend::Auto, &present).unwrap(), Backend::Uinput(present.clone()));
        assert_eq!(choose(GamepadBackend::Interposer, &present).unwrap(), Backend::Interposer);
        assert_eq!(choose(GamepadBackend::Uinput, &present).unwrap(), Backend::Uinput(present.clone()));
        let e = choose(GamepadBackend::Uinput, &missing).unwrap_err().to_string();
        assert!(e.contains("--gamepad-backend auto or interposer"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sdl_is_told_the_event_devices_unless_the_user_set_them() {
        let env = vec![("LD_PRELOAD".to_string(), "/r/g.so".to_string())];
        let got = sdl_env(env.clone(), false);
        assert_eq!(got[0], env[0]);
        assert_eq!(got[1].0, "SDL_JOYSTICK_DEVICE");
        assert_eq!(got[1].1, kelpie_gamepad::event_device_paths());
        assert_eq!(sdl_env(env.clone(), true), env, "the user's own value is left alone");
    }

    #[test]
    fn an_inherited_preload_is_kept_after_ours() {
        let env = vec![("LD_PRELOAD".to_string(), "/r/g.so".to_string()), ("X".into(), "y".into())];
        assert_eq!(preload_env(env.clone(), None), env);
        assert_eq!(preload_env(env.clone(), Some(" ".into())), env);
        let got = preload_env(env, Some("/usr/lib/libfoo.so".into()));
        assert_eq!(got[0].1, "/r/g.so /usr/lib/libfoo.so");
        assert_eq!(got[1], ("X".into(), "y".into()));
    }
}
