//! One viewer's signalling WebSocket: reads the browser's messages, feeds them to the
//! viewer's [`ViewerSession`] and carries out what it asks for (the only code here that
//! awaits the WebRTC driver, the display or the socket). Writing to the socket, video and
//! sound included, is [`crate::wsmedia`]'s job. It also lets the viewer in or refuses it
//! (`--max-viewers`), pings it and closes it when it falls silent ([`crate::heartbeat`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::StreamExt as _;
use kelpie_protocol::{ClientMessage, ServerMessage};

use crate::AppState;
use crate::auth::Access;
use crate::heartbeat::{CLOSE_GRACE, Due, Heartbeat, WRITE_TIMEOUT};
use crate::input::ViewerId;
use crate::limits::{self, Dropped};
use crate::outbox::{Outbound, Outbox};
use crate::session::{Action, Event, Offerings, Refusal, ViewerSession};
use crate::viewers::Full;
use crate::wsmedia::{self, WriterEnd};
use kelpie_media::error_chain;
use kelpie_media::limit::SharedKeyframeLimiter;
use kelpie_media::monitor::Monitor;

/// What a connection keeps besides its session.
struct Connection {
    state: Arc<AppState>,
    id: ViewerId,
    tx: Outbox,
    local_ip: Option<IpAddr>,
    clipboard_inbox: crate::clipboard::Inbox,
    /// What the keyframe requests of its video over the WebSocket go through, if limited.
    keyframes: Option<SharedKeyframeLimiter>,
    /// Its WebSocket video's window and estimate (fed the client's acknowledgements).
    flow: Arc<crate::wsflow::WsFlow>,
    /// The monitor its window shows (`?monitor=N`).
    monitor: Monitor,
}

/// The time on tokio's clock (paused in tests) as a `std` instant, for the heartbeat.
/// How often a viewer whose video flows is told of its path (the stats overlay's figures).
const PATH_EVERY: Duration = Duration::from_secs(1);

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs one viewer's connection, whose window shows `monitor`, until it closes; `tcp` is its
/// TCP connection, read by the WebSocket video's flow control.
pub async fn run(
    state: Arc<AppState>,
    socket: WebSocket,
    access: Access,
    local_ip: Option<IpAddr>,
    monitor: Monitor,
    tcp: Option<crate::tcpinfo::TcpProbe>,
) {
    state.metrics.signal_connections.fetch_add(1, Ordering::Relaxed);
    let (tx, outbox) = state.viewers.new_outbox();
    let id = match state.viewers.add(tx.clone()) {
        Ok(id) => id,
        Err(full) => return refuse(socket, full).await,
    };
    let (sink, mut stream) = socket.split();
    // The socket stays open while its halves are held: `stream` here, `sink` by the writer,
    // the only two that use the flow.
    let flow = Arc::new(crate::wsflow::WsFlow::new(state.bitrates, tcp));
    let mut writer = tokio::spawn(wsmedia::write_loop(state.clone(), sink, outbox, flow.clone()));
    let offerings = Offerings {
        resize: state.resize,
        codecs: state.source.codecs(),
        view_clipboard: state.clipboard.view_clipboard(),
        webrtc: state.transport != crate::config::Transport::Websocket,
    };
    let (mut session, first) = {
        let mut control = state.viewers.control();
        ViewerSession::join(id, access == Access::ViewOnly, offerings, Instant::now(), &mut control)
    };
    tracing::info!(viewer = id, ?access, monitor = monitor.index + 1, "viewer joined");
    let keyframes = session.keyframe_limiter();
    let mut conn =
        Connection { state, id, tx, local_ip, clipboard_inbox: Default::default(), keyframes, flow, monitor };
    conn.carry_out(&mut session, first).await;

    let mut heartbeat = Heartbeat::new(now());
    let mut path_tick = tokio::time::interval(PATH_EVERY);
    path_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let ended = loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            _ = path_tick.tick() => {
                conn.send_path(&session);
                continue;
            }
            () = tokio::time::sleep_until(heartbeat.next_at().into()) => {
                match heartbeat.poll(now()) {
                    Some(Due::Ping) => conn.tx.ping(),
                    Some(Due::Silent) => {
                        // The writer sends the close frame, if it can, and ends.
                        conn.tx.close(Dropped::Silent);
                        let _ = tokio::time::timeout(CLOSE_GRACE * 2, &mut writer).await;
                        break Some(WriterEnd::Dropped(Dropped::Silent));
                    }
                    None => {}
                }
                continue;
            }
            end = &mut writer => break end.ok(),
        };
        let Some(Ok(msg)) = msg else { break None };
        heartbeat.heard(now());
        let event = match msg {
            Message::Text(t) => match ClientMessage::parse(t.as_str()) {
                Ok(msg) => Event::Message(msg),
                Err(e) => {
                    tracing::debug!(viewer = id, "message dropped: {e}");
                    Event::Malformed(e.to_string())
                }
            },
            Message::Close(_) => break None,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                tracing::debug!(viewer = id, "binary message dropped");
                Event::Binary
            }
        };
        conn.step(&mut session, event).await;
    };
    writer.abort();
    conn.step(&mut session, Event::Closed).await;
    conn.state.viewers.remove(id);
    conn.state.files.tickets.revoke(id);
    match ended {
        Some(WriterEnd::Dropped(why)) => {
            conn.state.viewers.limits.dropped(why);
            tracing::warn!(viewer = id, "viewer dropped: {why}");
        }
        _ => tracing::info!(viewer = id, "viewer left"),
    }
}

/// Tells a viewer over the limit why it cannot come in, in the page and in the close frame.
async fn refuse(mut socket: WebSocket, Full(max): Full) {
    tracing::info!("viewer refused: {max} viewers are connected, the most --max-viewers allows");
    let error = ServerMessage::Error { message: limits::full_message(max), fatal: true };
    let close =
        CloseFrame { code: limits::FULL_CLOSE_CODE, reason: "too many viewers (--max-viewers)".into() };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        socket.send(Message::Text(error.to_json().into())).await?;
        tokio::time::timeout(CLOSE_GRACE, socket.send(Message::Close(Some(close)))).await.ok();
        Ok::<_, axum::Error>(())
    })
    .await;
}

impl Connection {
    /// Feeds one event to the session and carries out what it asks for.
    async fn step(&mut self, session: &mut ViewerSession, event: Event) {
        let actions = {
            let mut control = self.state.viewers.control();
            session.handle(Instant::now(), event, &mut control)
        };
        self.carry_out(session, actions).await;
    }

    /// Carries out actions in order; an action whose outcome the session must know feeds
    /// that outcome back in (and carries out what follows from it) before the next.
    async fn carry_out(&mut self, session: &mut ViewerSession, actions: Vec<Action>) {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            let Some(outcome) = self.act(action).await else { continue };
            let more = {
                let mut control = self.state.viewers.control();
                session.handle(Instant::now(), outcome, &mut control)
            };
            for a in more.into_iter().rev() {
                queue.push_front(a);
            }
        }
    }

    /// Carries out one action; returns the event it led to, if the session must know.
    async fn act(&mut self, action: Action) -> Option<Event> {
        let state = &self.state;
        let id = self.id;
        match action {
            Action::Greet { clipboard } => {
                self.send(ServerMessage::Hello(crate::http::session_info(state)));
                self.send(state.recorder.message().await);
                if let Some(settings) = state.files.settings() {
                    let ticket = (settings.upload != crate::files::UploadAccess::Off)
                        .then(|| state.files.tickets.issue(id).to_string());
                    self.send(ServerMessage::Files { ticket });
                }
                state.clipboard.greet(state, id, clipboard);
            }
            Action::Send(msg) => self.send(msg),
            Action::Notify(to, msg) => state.viewers.tell(to, msg),
            Action::Roster => state.viewers.broadcast_roster(),
            Action::StopWsMedia => {
                self.tx.send(Outbound::StopMedia);
            }
            Action::FollowRegions(codec) => {
                if let Some(regions) = state.source.regions(codec, self.monitor.index) {
                    self.tx.send(Outbound::Regions(regions));
                }
            }
            Action::ClosePeer(peer) => state.webrtc.close(peer).await,
            Action::Answer(sdp, policy) => {
                let local = state.webrtc.candidate_for(self.local_ip);
                return Some(match state.webrtc.offer(sdp, local, policy, self.monitor.index).await {
                    Ok(answer) => {
                        tracing::info!(viewer = id, peer = %answer.peer, codec = answer.codec.as_str(), "WebRTC offer answered");
                        Event::Answered { peer: answer.peer, sdp: answer.sdp, codec: answer.codec }
                    }
                    Err(e) => Event::OfferFailed(error_chain(&e)),
                });
            }
            Action::AddCandidate(peer, candidate) => state.webrtc.candidate(peer, candidate).await,
            Action::AudioDelay { peer, ms, video_ms } => state.webrtc.audio_delay(peer, ms, video_ms).await,
            Action::Keyframe(Some(peer)) => state.webrtc.keyframe(peer).await,
            Action::Keyframe(None) => {
                for s in state.source.streams() {
                    s.request_keyframe();
                }
            }
            Action::StartWsMedia { codec, audio } => {
                match wsmedia::start(state, id, codec, self.monitor, audio, self.keyframes.clone()) {
                    Ok((reply, media)) => {
                        self.tx.send(Outbound::StopMedia);
                        self.send(reply);
                        self.tx.send(media);
                    }
                    Err(e) => return Some(Event::WsMediaFailed(error_chain(&e))),
                }
            }
            Action::Resize { width, height, dpi } => {
                let display = state.source.display().to_string();
                let resized = tokio::task::spawn_blocking(move || {
                    kelpie_desktop::resize::resize_dpi(&display, width, height, dpi)
                })
                .await;
                match resized {
                    Ok(Ok(size)) => *state.display_size.lock().unwrap() = size,
                    Ok(Err(e)) => {
                        let why = error_chain(&e);
                        tracing::warn!("{why}");
                        return Some(Event::ResizeFailed(why));
                    }
                    Err(e) => tracing::warn!("resize task failed: {e}"),
                }
            }
            Action::Ack(pts) => self.flow.acked(Instant::now(), pts),
            Action::SetRate { fps, bitrate } => state.source.set_rate(fps, bitrate),
            Action::Record(on) => {
                if let Err(message) = state.recorder.set(state, on).await {
                    tracing::warn!(viewer = id, "recording: {message}");
                    self.send(ServerMessage::Error { message, fatal: false });
                }
                state.viewers.broadcast(&state.recorder.message().await);
            }
            Action::Clipboard(chunk, allowed) => {
                let inbox = &mut self.clipboard_inbox;
                if let Some(message) = crate::clipboard::from_viewer(state, inbox, id, allowed, &chunk) {
                    self.send(ServerMessage::Error { message, fatal: false });
                }
            }
            Action::Input(input) => {
                let screen = *state.display_size.lock().unwrap();
                kelpie_media::latency_mark!("input", 0u64);
                state.input.send(id, crate::monitor::to_screen(input, self.monitor, screen));
            }
            Action::ReleaseInput(viewer) => {
                state.input.release(viewer);
                if let Some(g) = &state.gamepads {
                    g.release(viewer);
                }
            }
            // With --gamepads off (or --display) the controller's pads go nowhere: not an
            // error of the viewer's, so not counted.
            Action::Gamepad(pad) => {
                if let Some(g) = &state.gamepads {
                    g.set(id, usize::from(pad.index), &pad.buttons, &pad.axes);
                }
            }
            Action::Count(Refusal::Signal) => {
                state.metrics.signal_rejected.fetch_add(1, Ordering::Relaxed);
            }
            Action::Count(Refusal::Input) => {
                state.metrics.input_rejected.fetch_add(1, Ordering::Relaxed);
            }
            Action::Count(Refusal::Keyframe) => {
                state.metrics.keyframes_refused.fetch_add(1, Ordering::Relaxed);
            }
            Action::Count(Refusal::Pair(why)) => {
                tracing::info!(viewer = id, "pairing ticket refused: {}", why.label());
                state.metrics.pair_refused(why).fetch_add(1, Ordering::Relaxed);
            }
            Action::IssueTicket => {
                let secret = crate::pairing::random_secret();
                let ticket = state.viewers.control().issue_ticket(id, secret, Instant::now());
                if let Some(ticket) = ticket {
                    state.metrics.pair_tickets.fetch_add(1, Ordering::Relaxed);
                    let expires_ms = crate::pairing::TICKET_TTL.as_millis() as u64;
                    self.send(ServerMessage::PairTicket { ticket, expires_ms });
                }
            }
            Action::Count(Refusal::Report) => {
                state.quality.ignored.fetch_add(1, Ordering::Relaxed);
            }
            Action::Report(path, report) => {
                let w = state.webrtc.counters();
                let frames = w.frames_sent.load(Ordering::Relaxed);
                // The server's part: capture to hand-over, averaged over the frames sent so
                // far (WebRTC; the WebSocket writer hands frames over as soon as they come).
                let server = (frames > 0)
                    .then(|| w.frame_delay_us_sum.load(Ordering::Relaxed) as f64 / 1e6 / frames as f64);
                state.quality.observe(path, &report, server);
            }
        }
        None
    }

    /// Tells the viewer what is known of its path, while its video flows (over WebRTC: the
    /// transport's estimate, loss and round trip; over the WebSocket: the acknowledgements').
    fn send_path(&self, session: &ViewerSession) {
        let info = match session.peer() {
            Some(peer) => self.state.webrtc.path(peer).map(|p| p.info()),
            None => self.flow.path(),
        };
        if let Some(info) = info {
            self.send(ServerMessage::Path(info));
        }
    }

    /// Queues `msg` for this viewer (an overflow closes the connection: see [`Outbox`]).
    fn send(&self, msg: ServerMessage) {
        self.tx.send_json(&msg);
    }
}
