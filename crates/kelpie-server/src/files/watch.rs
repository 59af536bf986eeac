//! Tells the viewers when the download folder changes, so files the desktop writes appear in
//! their *files* panels without the page asking: the folder's listing is read every
//! [`EVERY`] while any viewer is connected (nothing is read while none is), and a change
//! (a file added, removed, grown or rewritten) is a `files` message to every viewer, which
//! fetch `api/files` again. Polling the listing rather than inotify: it costs one `readdir`
//! and an `lstat` per file (at most [`super::disk::MAX_LISTED`]) twice a second, needs no
//! watch descriptors (a per-user limit) and sees a folder that was replaced or lives on a
//! network file system; inotify would also fire on every write of a file being written.

use std::sync::Arc;
use std::time::Duration;

use kelpie_protocol::ServerMessage;
use kelpie_protocol::files::FileEntry;

use crate::AppState;

/// How often the listing is read while viewers are connected.
const EVERY: Duration = Duration::from_millis(500);

/// The last listing seen; pure, so the rule is tested without a folder.
#[derive(Debug, Default)]
struct Seen {
    last: Option<Vec<FileEntry>>,
}

impl Seen {
    /// A listing was read: whether viewers must be told (the first after [`Self::forget`]
    /// is not a change: viewers fetch the listing when they open their panel).
    fn read(&mut self, files: Vec<FileEntry>) -> bool {
        let changed = self.last.as_ref().is_some_and(|last| *last != files);
        self.last = Some(files);
        changed
    }

    /// No viewer is connected: the next listing starts afresh.
    fn forget(&mut self) {
        self.last = None;
    }
}

/// Watches `--download-dir` until the task is aborted (with `--files on`; returns at once
/// otherwise).
pub async fn watch(state: Arc<AppState>) {
    let Some(dir) = state.files.settings().map(|s| s.download_dir.clone()) else { return };
    let mut seen = Seen::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if state.viewers.count() == 0 {
            seen.forget();
            continue;
        }
        let listed = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || super::disk::list(&dir)).await
        };
        match listed {
            Ok(Ok(files)) => {
                if seen.read(files) {
                    state.viewers.broadcast(&ServerMessage::Files { ticket: None });
                }
            }
            // The folder is gone or unreadable: the panel says so when it fetches the list.
            Ok(Err(e)) => tracing::debug!("cannot list {}: {e}", dir.display()),
            Err(e) => tracing::warn!("listing task failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, mtime_ms: u64) -> FileEntry {
        FileEntry { name: name.into(), size, mtime_ms }
    }

    #[test]
    fn additions_removals_growth_and_rewrites_are_changes() {
        let mut seen = Seen::default();
        assert!(!seen.read(vec![file("a", 1, 10)]), "the first listing is no change");
        assert!(!seen.read(vec![file("a", 1, 10)]));
        assert!(seen.read(vec![file("a", 1, 10), file("b", 0, 11)]), "added");
        assert!(seen.read(vec![file("a", 1, 10), file("b", 5, 11)]), "grew");
        assert!(seen.read(vec![file("a", 1, 12), file("b", 5, 11)]), "rewritten, same size");
        assert!(seen.read(vec![file("b", 5, 11)]), "removed");
        assert!(!seen.read(vec![file("b", 5, 11)]));
        seen.forget();
        assert!(!seen.read(vec![]), "after the last viewer left, the next listing starts afresh");
        assert!(seen.read(vec![file("c", 1, 1)]));
    }
}
