//! `api/files`: the listing (`GET api/files`), downloads (`GET api/files/NAME`) and uploads
//! (`PUT api/files/NAME[?overwrite=1]`). They sit behind the edge and the token check like
//! every other request: a PUT from another site's page is refused by the edge's `Origin`
//! check. Who may upload is [`super::permit`]'s rule: by default the viewer holding control,
//! told by the upload ticket its page sends ([`UPLOAD_TICKET_HEADER`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures_util::StreamExt as _;
use kelpie_protocol::files::{FileList, UPLOAD_TICKET_HEADER, check_name};

use super::disk::{self, DiskError, Part};
use super::permit::{self, Denied};
use super::{Refusal, Settings};
use crate::AppState;
use crate::auth::Access;

/// Bytes gathered from the request before one write to disk.
const WRITE_CHUNK: usize = 1 << 20;
/// Bytes read from disk per chunk of a download.
const READ_CHUNK: usize = 256 << 10;

/// The routes, to be merged inside the token check.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/files", get(list)).route("/api/files/{name}", get(download).put(upload))
}

/// A refusal: counted, and answered with `status` and a sentence saying what to do.
fn refuse(state: &AppState, why: Refusal, status: StatusCode, text: impl Into<String>) -> Response {
    state.files.counters.refused(why);
    let mut text = text.into();
    text.push('\n');
    (status, [(header::CACHE_CONTROL, "no-store"), (header::CONTENT_TYPE, "text/plain; charset=utf-8")], text)
        .into_response()
}

/// The answer with `--files off`.
fn off(state: &AppState) -> Response {
    refuse(state, Refusal::Off, StatusCode::NOT_FOUND, "file transfer is off on this server (--files off)")
}

fn disk_refusal(state: &AppState, e: &DiskError) -> Response {
    match e {
        DiskError::Missing => refuse(state, Refusal::Missing, StatusCode::NOT_FOUND, "no such file"),
        DiskError::Special => refuse(
            state,
            Refusal::Special,
            StatusCode::FORBIDDEN,
            "not a regular file (a folder, link, FIFO or device): only regular files are transferred",
        ),
        DiskError::Exists => refuse(
            state,
            Refusal::Exists,
            StatusCode::CONFLICT,
            "a file of this name exists: rename yours, or replace it (?overwrite=1)",
        ),
        DiskError::Io(io) => {
            tracing::warn!("file transfer: {io}");
            let status = if io.raw_os_error() == Some(libc::ENOSPC) {
                StatusCode::INSUFFICIENT_STORAGE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            refuse(state, Refusal::Io, status, format!("the server's disk refused: {io}"))
        }
    }
}

/// The checked name of the request, or why it is refused.
fn name_of(name: Result<Path<String>, PathRejection>) -> Result<String, String> {
    let Path(name) = name.map_err(|e| format!("the file name is not readable: {e}"))?;
    check_name(&name).map_err(|e| e.to_string())?;
    Ok(name)
}

/// The answer to a refused name.
fn bad_name(state: &AppState, why: String) -> Response {
    refuse(state, Refusal::Name, StatusCode::BAD_REQUEST, why)
}

/// Whether the request (its token, its ticket) may upload now.
fn permission(
    state: &AppState,
    settings: &Settings,
    access: Option<Access>,
    headers: &HeaderMap,
) -> Result<(), Denied> {
    let ticket = state.files.tickets.check(headers.get(UPLOAD_TICKET_HEADER).map(HeaderValue::as_bytes));
    permit::may_upload(settings.upload, access, ticket, |id| state.viewers.control().holds_control(id))
}

/// The answer to an upload that is not allowed.
fn denied(state: &AppState, why: Denied) -> Response {
    let refusal = match why {
        Denied::Off => Refusal::Off,
        Denied::ViewOnly => Refusal::Access,
        Denied::NoTicket | Denied::BadTicket => Refusal::Ticket,
        Denied::NotController => Refusal::Control,
    };
    refuse(state, refusal, StatusCode::FORBIDDEN, why.message())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("file transfer tasks do not panic")
}

async fn list(
    State(state): State<Arc<AppState>>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
) -> Response {
    let Some(settings) = state.files.settings().cloned() else { return off(&state) };
    let upload = permission(&state, &settings, access.map(|a| a.0), &headers).is_ok();
    let dir = settings.download_dir.clone();
    match blocking(move || disk::list(&dir)).await {
        Ok(files) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(FileList { files, upload, upload_max: settings.upload_max }),
        )
            .into_response(),
        Err(e) => disk_refusal(&state, &DiskError::from(e)),
    }
}

/// `Content-Disposition: attachment` with the name as plain ASCII and as UTF-8 (RFC 6266).
fn disposition(name: &str) -> HeaderValue {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._- ".contains(c) { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(State(state): State<Arc<AppState>>, name: Result<Path<String>, PathRejection>) -> Response {
    let Some(dir) = state.files.settings().map(|s| s.download_dir.clone()) else { return off(&state) };
    let name = match name_of(name) {
        Ok(n) => n,
        Err(why) => return bad_name(&state, why),
    };
    let opened = {
        let name = name.clone();
        blocking(move || disk::open(&dir, &name)).await
    };
    let (file, size) = match opened {
        Ok(f) => f,
        Err(e) => return disk_refusal(&state, &e),
    };
    state.files.counters.downloaded.fetch_add(1, Ordering::Relaxed);
    let counters = state.clone();
    // At most the size announced in Content-Length: a file that grows meanwhile is cut there.
    let stream = futures_util::stream::unfold(Some((file, size)), move |open| {
        let state = counters.clone();
        async move {
            let (mut file, left) = open?;
            if left == 0 {
                return None;
            }
            let read = blocking(move || {
                use std::io::Read as _;
                let mut buf = vec![0; READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK))];
                let n = file.read(&mut buf)?;
                buf.truncate(n);
                Ok::<_, std::io::Error>((file, buf))
            })
            .await;
            match read {
                Ok((_, buf)) if buf.is_empty() => {
                    // Shorter than announced (cut meanwhile): end with an error, not a short file.
                    Some((Err(std::io::Error::other("the file became shorter while it was sent")), None))
                }
                Ok((file, buf)) => {
                    let n = buf.len() as u64;
                    state.files.counters.downloaded_bytes.fetch_add(n, Ordering::Relaxed);
                    Some((Ok(Bytes::from(buf)), Some((file, left - n))))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::CONTENT_DISPOSITION, disposition(&name)),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn upload(
    State(state): State<Arc<AppState>>,
    access: Option<Extension<Access>>,
    name: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(settings) = state.files.settings().cloned() else { return off(&state) };
    // Decided once, at the start: control taken away later does not cut the upload off.
    if let Err(why) = permission(&state, &settings, access.map(|a| a.0), &headers) {
        return denied(&state, why);
    }
    let name = match name_of(name) {
        Ok(n) => n,
        Err(why) => return bad_name(&state, why),
    };
    let overwrite = uri.query().is_some_and(|q| q.split('&').any(|p| p == "overwrite=1"));
    let max = settings.upload_max;
    let too_large = |state: &AppState| {
        refuse(
            state,
            Refusal::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the file is larger than this server takes ({max} bytes, --upload-max)"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large(&state);
    }
    let dir = settings.upload_dir.clone();
    let checked = {
        let (dir, name) = (dir.clone(), name.clone());
        blocking(move || disk::check_target(&dir, &name, overwrite).and_then(|()| Part::create(&dir))).await
    };
    let mut part = match checked {
        Ok(p) => p,
        Err(e) => return disk_refusal(&state, &e),
    };
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let mut received: u64 = 0;
    loop {
        let chunk = match stream.next().await {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(e)) => {
                // The viewer cancelled or the connection broke: the part file goes with `part`.
                state.files.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("upload of {name:?} cut off after {received} bytes: {e}");
                return (StatusCode::BAD_REQUEST, "the upload was cut off\n").into_response();
            }
            None => None,
        };
        if let Some(chunk) = &chunk {
            received += chunk.len() as u64;
            if received > max {
                return too_large(&state);
            }
            buf.extend_from_slice(chunk);
        }
        if buf.len() >= WRITE_CHUNK || (chunk.is_none() && !buf.is_empty()) {
            let written = blocking(move || {
                let r = part.write(&buf);
                buf.clear();
                (part, buf, r)
            })
            .await;
            (part, buf) = (written.0, written.1);
            if let Err(e) = written.2 {
                return disk_refusal(&state, &e);
            }
        }
        if chunk.is_none() {
            break;
        }
    }
    let size = part.written();
    let committed = {
        let name = name.clone();
        blocking(move || part.commit(&name, overwrite)).await
    };
    if let Err(e) = committed {
        return disk_refusal(&state, &e);
    }
    state.files.counters.uploaded.fetch_add(1, Ordering::Relaxed);
    state.files.counters.uploaded_bytes.fetch_add(size, Ordering::Relaxed);
    tracing::info!(name, size, dir = %dir.display(), "file uploaded");
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "name": name, "size": size })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn downloads_are_attachments_named_in_ascii_and_utf8() {
        assert_eq!(
            disposition("a b.txt").to_str().unwrap(),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            disposition("名\".pdf").to_str().unwrap(),
            "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E5%90%8D%22.pdf"
        );
    }
}
