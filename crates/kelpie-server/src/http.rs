//! The HTTP side: embedded web client, session info, signalling WebSocket, health and metrics.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use kelpie_protocol::{MAX_SIGNAL_MESSAGE, PROTOCOL_VERSION, SessionInfo};

use crate::AppState;
use crate::auth::Access;
use crate::listener::ConnInfo;
use crate::prometheus::{self, Kind};

/// The built web client (`web/dist`), embedded at compile time.
#[derive(rust_embed::RustEmbed)]
#[folder = "../../web/dist"]
struct Assets;

/// The whole HTTP application: every request passes the edge ([`crate::edge`]), all but
/// `/healthz` the token check too.
pub fn app(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/api/session", get(session))
        .route("/api/signal", get(signal))
        .route("/metrics", get(metrics))
        .merge(crate::files::routes())
        .fallback(get(asset))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .layer(middleware::from_fn_with_state(state.edge.clone(), crate::edge::guard))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.health() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("unavailable: {why}\n")).into_response(),
    }
}

pub(crate) fn session_info(state: &AppState) -> SessionInfo {
    // One lock: two guards in one expression would deadlock (both live to its end).
    let (width, height) = *state.display_size.lock().unwrap();
    SessionInfo {
        version: PROTOCOL_VERSION,
        display: state.source.display().to_string(),
        width,
        height,
        codecs: state.source.codecs(),
        transport: state.transport.wire(),
        ice_servers: state.ice.for_viewer(std::time::SystemTime::now()),
        ice_transport: state.ice.policy(),
        monitors: state.source.monitors(),
    }
}

/// The session description. It carries per-viewer TURN credentials: never cached.
async fn session(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(session_info(&state))).into_response()
}

async fn asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path =
        if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let Some(file) = Assets::get(&path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mime = match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "css" => "text/css",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    };
    let cache = if path.contains("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, cache)], file.data.into_owned()).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    let w = state.webrtc.counters();
    let mut out = String::new();
    let i = state.input.counters();
    let r = Ordering::Relaxed;
    let pad = |c: fn(&kelpie_gamepad::GamepadCounters) -> &std::sync::atomic::AtomicU64| {
        state.gamepads.as_ref().map_or(0, |g| c(g.counters()).load(r))
    };
    let c = &state.clipboard.counters;
    let audio = state.audio.as_ref().map(|a| a.counters().clone()).unwrap_or_default();
    let scalars: [(&str, Kind, &str, u64); 48] = [
        (
            "kelpie_clipboard_to_remote_total",
            Kind::Counter,
            "Clipboard contents set on the display by viewers.",
            c.to_remote.load(r),
        ),
        (
            "kelpie_clipboard_to_browser_total",
            Kind::Counter,
            "Display clipboard contents sent to viewers.",
            c.to_browser.load(r),
        ),
        (
            "kelpie_clipboard_rejected_total",
            Kind::Counter,
            "Clipboard transfers refused (malformed, oversized, no control).",
            c.rejected.load(r),
        ),
        (
            "kelpie_clipboard_withheld_total",
            Kind::Counter,
            "Remote clipboards not sent to view-only viewers (see --view-clipboard).",
            c.withheld.load(r),
        ),
        ("kelpie_audio_packets_total", Kind::Counter, "Opus packets encoded.", audio.packets.load(r)),
        ("kelpie_audio_bytes_total", Kind::Counter, "Opus bytes encoded.", audio.bytes.load(r)),
        (
            "kelpie_audio_dtx_skipped_total",
            Kind::Counter,
            "Opus silence (DTX) packets not sent.",
            audio.dtx_skipped.load(r),
        ),
        (
            "kelpie_audio_captures_started_total",
            Kind::Counter,
            "Times sound capture started because a program began to play.",
            audio.captures_started.load(r),
        ),
        (
            "kelpie_audio_capturing",
            Kind::Gauge,
            "Whether sound is being captured now (1) or not, as nothing plays (0).",
            audio.capturing.load(r),
        ),
        (
            "kelpie_audio_lost_ms_total",
            Kind::Counter,
            "Milliseconds of sound PulseAudio lost before capture (its thread held up), heard as gaps.",
            audio.lost_ms.load(r),
        ),
        (
            "kelpie_auth_rejected_total",
            Kind::Counter,
            "Requests refused for a missing or wrong token.",
            m.auth_rejected.load(r),
        ),
        (
            "kelpie_signal_connections_total",
            Kind::Counter,
            "Signalling WebSockets opened.",
            m.signal_connections.load(r),
        ),
        (
            "kelpie_signal_rejected_total",
            Kind::Counter,
            "Malformed, oversized or out-of-range messages dropped.",
            m.signal_rejected.load(r),
        ),
        (
            "kelpie_viewers",
            Kind::Gauge,
            "Connected viewers (signalling sockets).",
            state.viewers.count() as u64,
        ),
        (
            "kelpie_input_events_total",
            Kind::Counter,
            "Keyboard and mouse messages applied.",
            i.events.load(r),
        ),
        (
            "kelpie_input_failed_total",
            Kind::Counter,
            "Input messages the X server refused.",
            i.failed.load(r),
        ),
        (
            "kelpie_input_released_keys_total",
            Kind::Counter,
            "Keys released for viewers that left, lost control or focus, or went silent.",
            i.released.load(r),
        ),
        (
            "kelpie_input_released_buttons_total",
            Kind::Counter,
            "Mouse buttons released for viewers that left, lost control or focus, or went silent.",
            i.released_buttons.load(r),
        ),
        (
            "kelpie_input_silent_releases_total",
            Kind::Counter,
            "Viewers that went silent (no heartbeat) while holding keys or buttons, which were released.",
            i.silent.load(r),
        ),
        (
            "kelpie_input_dropped_total",
            Kind::Counter,
            "Input messages dropped because the viewer's input queue was full.",
            i.dropped.load(r),
        ),
        (
            "kelpie_input_discarded_total",
            Kind::Counter,
            "Input messages still queued when their viewer left or lost control, not applied.",
            i.discarded.load(r),
        ),
        (
            "kelpie_gamepad_updates_total",
            Kind::Counter,
            "Gamepad states from the viewer with control that changed a pad.",
            pad(|g| &g.updates),
        ),
        (
            "kelpie_gamepad_readers_total",
            Kind::Counter,
            "Programs that opened one of the session's joysticks or event devices.",
            pad(|g| &g.readers),
        ),
        (
            "kelpie_gamepad_readers_dropped_total",
            Kind::Counter,
            "Programs reading a joystick or event device dropped because they stopped reading.",
            pad(|g| &g.dropped),
        ),
        (
            "kelpie_gamepad_released_total",
            Kind::Counter,
            "Pads put back at rest because their viewer left or lost control.",
            pad(|g| &g.released),
        ),
        (
            "kelpie_gamepad_rumble_total",
            Kind::Counter,
            "Rumble changes from programs passed to the viewer driving the pad.",
            pad(|g| &g.rumble),
        ),
        (
            "kelpie_gamepad_rumble_refused_total",
            Kind::Counter,
            "Rumble records from programs refused: malformed (the program is cut off) or over 30 a second per pad.",
            pad(|g| &g.rumble_refused),
        ),
        (
            "kelpie_gamepad_uinput_failed_total",
            Kind::Counter,
            "Gamepads that could not be made uinput devices (they stay the interposer's).",
            pad(|g| &g.uinput_failed),
        ),
        (
            "kelpie_keyframe_requests_refused_total",
            Kind::Counter,
            "Keyframe requests (keyframe messages, PLI, FIR, WebSocket video falling behind) of view-only viewers beyond one a second.",
            m.keyframes_refused.load(r) + w.keyframes_refused.load(r),
        ),
        (
            "kelpie_input_rejected_total",
            Kind::Counter,
            "Input from viewers without control (view-only or not the controller).",
            m.input_rejected.load(r),
        ),
        (
            "kelpie_websocket_video_bytes_total",
            Kind::Counter,
            "Video bytes sent over WebSockets.",
            m.ws_video_bytes.load(r),
        ),
        (
            "kelpie_frame_regions_sent_total",
            Kind::Counter,
            "Changed regions of video frames sent to viewers, which redraw only those.",
            m.regions_sent.load(r),
        ),
        (
            "kelpie_websocket_frames_dropped_total",
            Kind::Counter,
            "Frames skipped for WebSocket viewers that fell behind.",
            m.ws_frames_dropped.load(r),
        ),
        (
            "kelpie_websocket_audio_bytes_total",
            Kind::Counter,
            "Sound bytes sent over WebSockets.",
            m.ws_audio_bytes.load(r),
        ),
        (
            "kelpie_websocket_audio_dropped_total",
            Kind::Counter,
            "Audio frames not sent over WebSockets because they were over 200 ms old.",
            m.ws_audio_dropped.load(r),
        ),
        ("kelpie_webrtc_viewers", Kind::Gauge, "WebRTC peer connections alive.", w.peers_alive.load(r)),
        (
            "kelpie_webrtc_connected_total",
            Kind::Counter,
            "WebRTC peers that connected.",
            w.peers_connected.load(r),
        ),
        (
            "kelpie_webrtc_unmatched_datagrams_total",
            Kind::Counter,
            "UDP datagrams no peer claimed.",
            w.datagrams_unmatched.load(r),
        ),
        (
            "kelpie_webrtc_microphones_refused_total",
            Kind::Counter,
            "Offers of view-only viewers whose microphone was refused (audio answered send-only).",
            w.microphones_refused.load(r),
        ),
        (
            "kelpie_webrtc_candidates_refused_total",
            Kind::Counter,
            "Trickled ICE candidates refused: the peer had 64 already.",
            w.candidates_refused.load(r),
        ),
        (
            "kelpie_webrtc_idle_keyframe_requests_ignored_total",
            Kind::Counter,
            "Keyframe requests of idle streams (no loss) not answered.",
            w.idle_plis_ignored.load(r),
        ),
        ("kelpie_webrtc_sent_bytes_total", Kind::Counter, "UDP bytes sent.", w.bytes_sent.load(r)),
        (
            "kelpie_webrtc_sent_datagrams_total",
            Kind::Counter,
            "UDP datagrams sent.",
            w.datagrams_sent.load(r),
        ),
        (
            "kelpie_webrtc_frames_total",
            Kind::Counter,
            "Frames handed to WebRTC peers.",
            w.frames_sent.load(r),
        ),
        (
            "kelpie_webrtc_audio_dropped_total",
            Kind::Counter,
            "Sound frames not sent over WebRTC: captured too long before (a stall in the server); a gap instead of a lasting delay.",
            w.audio_frames_dropped.load(r),
        ),
        (
            "kelpie_webrtc_nacks_total",
            Kind::Counter,
            "NACKs received from WebRTC viewers (each asks for lost packets again; str0m resends them over RTX).",
            w.nacks.load(r),
        ),
        (
            "kelpie_pair_tickets_total",
            Kind::Counter,
            "Pairing tickets issued to viewers opening a second screen.",
            m.pair_tickets.load(r),
        ),
        (
            "kelpie_websocket_window_waits_total",
            Kind::Counter,
            "WebSocket video frames that waited for the viewer's window (about one round trip in flight) to open.",
            m.ws_window_waits.load(r),
        ),
    ];
    for (name, kind, help, value) in scalars {
        prometheus::scalar(&mut out, name, kind, help, value);
    }
    state.viewers.limits.write_metrics(&mut out, state.viewers.max(), state.viewers.queued_bytes());
    prometheus::labelled(
        &mut out,
        "kelpie_pair_refused_total",
        Kind::Counter,
        "Pairing tickets refused (malformed, unknown: forged or used, expired, own, paired already).",
        crate::pairing::PairError::ALL.iter().map(|e| ("reason", e.label(), m.pair_refused(*e).load(r))),
    );
    prometheus::header(
        &mut out,
        "kelpie_frame_delay_seconds",
        Kind::Summary,
        "Time from capture to hand-over to the WebRTC peers.",
    );
    let _ = writeln!(
        out,
        "kelpie_frame_delay_seconds_sum {}\nkelpie_frame_delay_seconds_count {}",
        w.frame_delay_us_sum.load(Ordering::Relaxed) as f64 / 1e6,
        w.frames_sent.load(Ordering::Relaxed)
    );
    // The least estimate per transport: what the slowest viewer's path carries.
    let ws_least = m.ws_estimates.lock().unwrap_or_else(|e| e.into_inner()).values().min().copied();
    let webrtc_least = Some(w.estimate_min_bps.load(Ordering::Relaxed)).filter(|&b| b > 0);
    prometheus::labelled(
        &mut out,
        "kelpie_bandwidth_estimate_bits_per_second",
        Kind::Gauge,
        "The least bandwidth estimate of a viewer's path, per transport (absent: no viewer estimated).",
        [("transport", "webrtc", webrtc_least), ("transport", "websocket", ws_least)]
            .into_iter()
            .filter_map(|(k, v, b)| b.map(|b| (k, v, b))),
    );
    let streams = state.source.streams();
    let configured = u64::from(state.source.rate().bitrate_kbps) * 1000;
    prometheus::header(
        &mut out,
        "kelpie_target_bitrate_bits_per_second",
        Kind::Gauge,
        "The bitrate each running stream is encoded at: the configured one, capped by its viewers' paths.",
    );
    for s in &streams {
        let monitor = (s.monitor().index + 1).to_string();
        let labels = [("codec", s.codec().as_str()), ("monitor", monitor.as_str())];
        let bps = s.cap_bps().map_or(configured, |c| c.min(configured));
        prometheus::sample(&mut out, "kelpie_target_bitrate_bits_per_second", &labels, bps);
    }
    type Read = fn(&kelpie_media::StreamCounters) -> u64;
    let per_stream: [(&str, &str, Read); 4] = [
        ("kelpie_frames_encoded_total", "Frames encoded per stream.", |c| {
            c.frames_encoded.load(Ordering::Relaxed)
        }),
        ("kelpie_encoded_bytes_total", "Bytes encoded per stream.", |c| {
            c.bytes_encoded.load(Ordering::Relaxed)
        }),
        ("kelpie_keyframes_total", "Keyframes encoded per stream.", |c| c.keyframes.load(Ordering::Relaxed)),
        (
            "kelpie_delta_frames_total",
            "Frames of small changes Kelpie coded itself (delta frames) per stream.",
            |c| c.delta_frames.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in per_stream {
        prometheus::header(&mut out, name, Kind::Counter, help);
        for s in &streams {
            let (codec, encoder, monitor) = (s.codec().as_str(), s.encoder(), s.monitor().index + 1);
            let _ = writeln!(
                out,
                "{name}{{codec=\"{codec}\",encoder=\"{encoder}\",monitor=\"{monitor}\"}} {}",
                value(s.counters())
            );
        }
    }
    prometheus::header(
        &mut out,
        "kelpie_encode_seconds",
        Kind::Summary,
        "Time from a frame's capture to its encoded output (conversion and encoding), per stream.",
    );
    for s in &streams {
        let monitor = (s.monitor().index + 1).to_string();
        let labels = [("codec", s.codec().as_str()), ("encoder", s.encoder()), ("monitor", monitor.as_str())];
        let c = s.counters();
        let seconds = c.encode_us_sum.load(Ordering::Relaxed) as f64 / 1e6;
        prometheus::sample(&mut out, "kelpie_encode_seconds_sum", &labels, seconds);
        prometheus::sample(
            &mut out,
            "kelpie_encode_seconds_count",
            &labels,
            c.frames_encoded.load(Ordering::Relaxed),
        );
    }
    state.quality.write_metrics(&mut out);
    state.edge.write_metrics(&mut out);
    state.recorder.write_metrics(&mut out, state.recorder.is_on().await);
    state.connections.write_metrics(&mut out);
    state.files.write_metrics(&mut out);
    if let Some(tls) = &state.tls {
        tls.write_metrics(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn signal(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnectInfo<ConnInfo>>>,
    access: Option<Extension<Access>>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let conn = conn.map(|c| c.0.0).unwrap_or_default();
    let local_ip: Option<IpAddr> = conn.local.map(|a| a.ip());
    let tcp = conn.tcp_fd.map(crate::tcpinfo::TcpProbe::new);
    // Fail closed: a request the token check did not see gets nothing.
    let Some(Extension(access)) = access else {
        tracing::error!("a signalling request without an access level was refused");
        return (StatusCode::FORBIDDEN, "no access level: refused\n").into_response();
    };
    let monitor = match crate::monitor::from_query(query.as_deref(), state.source.monitors()) {
        Ok(m) => m,
        Err(why) => {
            state.metrics.signal_rejected.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    ws.max_message_size(MAX_SIGNAL_MESSAGE)
        .max_frame_size(MAX_SIGNAL_MESSAGE)
        .on_upgrade(move |socket| crate::signal::run(state, socket, access, local_ip, monitor, tcp))
}
