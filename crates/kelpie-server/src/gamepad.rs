//! Starting the session's gamepads (`--gamepads`, crate `kelpie-gamepad`): their sockets and
//! the interposer go in `gamepad/` of the embedded display's runtime directory (0700, so
//! other users can neither read the pads nor replace the library), and the programs Kelpie
//! starts get the environment that loads it.

use std::path::Path;

use crate::config::{Config, Switch};

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
    let dir = runtime.join("gamepad");
    let g = kelpie_gamepad::Gamepads::start(&dir).map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot set up the gamepads in {} (or start with --gamepads off)",
            dir.display()
        ))
    })?;
    tracing::info!(
        "gamepads: /dev/input/js0..3 for the programs Kelpie starts (LD_PRELOAD {})",
        dir.display()
    );
    Ok(Some(g))
}

/// The environment of a program Kelpie starts: the interposer ahead of any `LD_PRELOAD`
/// Kelpie itself was given, and where the sockets are.
pub fn app_env(g: &kelpie_gamepad::Gamepads) -> Vec<(String, String)> {
    preload_env(g.env(), std::env::var("LD_PRELOAD").ok())
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
    fn an_inherited_preload_is_kept_after_ours() {
        let env = vec![("LD_PRELOAD".to_string(), "/r/g.so".to_string()), ("X".into(), "y".into())];
        assert_eq!(preload_env(env.clone(), None), env);
        assert_eq!(preload_env(env.clone(), Some(" ".into())), env);
        let got = preload_env(env, Some("/usr/lib/libfoo.so".into()));
        assert_eq!(got[0].1, "/r/g.so /usr/lib/libfoo.so");
        assert_eq!(got[1], ("X".into(), "y".into()));
    }
}
