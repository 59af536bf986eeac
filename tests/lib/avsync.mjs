// Audio/video synchronisation, measured in the browser: `kelpie-probe clock --beep` draws a
// new timestamp and starts a 50 ms beep at the same moment, every interval. The page notes
// when each new timestamp is presented (requestVideoFrameCallback) and when each beep is
// heard (an AudioWorklet on the received sound, mapped to the page clock with
// getOutputTimestamp). Audio minus video, per beep, is the sync error (positive: sound late).

/**
 * Pairs beeps with the frames that showed their timestamps.
 * @param {{ stamp: number, presented: number }[]} frames first presentation of each new stamp (epoch ms)
 * @param {number[]} onsets when beeps were heard (epoch ms)
 * @param {number} interval ms between beeps
 * @returns {{ stamp: number, video: number, audio: number, offset: number }[]} per beep: latencies and audio minus video
 */
export function pairAvSync(frames, onsets, interval) {
  const out = [];
  const byStamp = [...frames].sort((a, b) => a.stamp - b.stamp);
  for (const heard of onsets) {
    // The beep started with the latest stamp drawn before it was heard, no more than an
    // interval earlier (beeps are an interval apart; both latencies are far below that).
    let best = null;
    for (const f of byStamp) {
      if (f.stamp <= heard && heard - f.stamp < interval) best = f;
    }
    if (!best || out.some((o) => o.stamp === best.stamp)) continue;
    const video = best.presented - best.stamp;
    const audio = heard - best.stamp;
    out.push({ stamp: best.stamp, video, audio, offset: audio - video });
  }
  return out;
}

/**
 * Runs in the page (pass to page.evaluate with { ms, source }): records presented stamps and
 * heard beeps for `ms`. `source` is
 * - 'webrtc': the peer connection's audio track, and frames of the `<video>`
 *   (requestVideoFrameCallback, presented at `expectedDisplayTime`);
 * - 'websocket': the WebSocket sound (the onset detector runs in the page's own AudioContext,
 *   on `window.kelpieSound.wsOutput`, so no extra hop adds latency), and frames drawn on
 *   the canvas (`window.kelpie.onFrame`, presented when drawn).
 * Needs window.__stamp (tests/lib/stamp.mjs) installed.
 */
export async function recordAvSyncInPage({ ms, source }) {
  const { decodeStamp, unwrapMs, STAMP } = window.__stamp;
  let ctx;
  let input;
  if (source === 'webrtc') {
    const r = window.kelpie.pc?.getReceivers().find((x) => x.track.kind === 'audio');
    if (!r) return { error: 'no audio receiver' };
    ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
    await ctx.resume();
    input = ctx.createMediaStreamSource(new MediaStream([r.track]));
  } else if (source === 'websocket') {
    input = window.kelpieSound?.wsOutput;
    if (!input) return { error: 'no WebSocket sound output' };
    ctx = input.context;
    if (ctx.state !== 'running') return { error: `the page's AudioContext is ${ctx.state}` };
  } else {
    return { error: `unknown source ${source}` };
  }
  // A name of its own: the page's context may already have run this recorder.
  const name = `kelpie-onsets-${Math.random().toString(36).slice(2)}`;
  const worklet = `
    class Onsets extends AudioWorkletProcessor {
      // Samples since the last loud one: a loud sample after 100 ms without any is an onset
      // (the decoder ramps a beep in, so quieter samples must not count as a break).
      constructor() { super(); this.sinceLoud = 0; }
      process(inputs) {
        const ch = inputs[0] && inputs[0][0];
        if (!ch) { this.sinceLoud += 128; return true; }
        for (let i = 0; i < ch.length; i++) {
          if (Math.abs(ch[i]) > 0.05) {
            if (this.sinceLoud >= sampleRate / 10) this.port.postMessage(currentTime + i / sampleRate);
            this.sinceLoud = 0;
          } else {
            this.sinceLoud++;
          }
        }
        return true;
      }
    }
    registerProcessor('${name}', Onsets);`;
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], { type: 'application/javascript' })));
  const node = new AudioWorkletNode(ctx, name);
  input.connect(node);
  // Keep the graph pulled without making noise.
  const mute = ctx.createGain();
  mute.gain.value = 0;
  node.connect(mute).connect(ctx.destination);

  const onsets = [];
  node.port.onmessage = (e) => {
    // Context time of the sample → page time at which it is output.
    const ts = ctx.getOutputTimestamp();
    const perf = ts.performanceTime + (e.data - ts.contextTime) * 1000;
    onsets.push(performance.timeOrigin + perf);
  };
  const c = document.createElement('canvas');
  c.width = STAMP.width;
  c.height = STAMP.height;
  const g = c.getContext('2d', { willReadFrequently: true });
  const frames = [];
  const seen = new Set();
  /** Notes the stamp shown by `picture` (presented at epoch ms `presented`) if it is new. */
  const look = (picture, presented) => {
    g.drawImage(picture, 0, 0, STAMP.width, STAMP.height, 0, 0, STAMP.width, STAMP.height);
    const value = decodeStamp(g.getImageData(0, 0, STAMP.width, STAMP.height).data, STAMP.width, STAMP.height, 1);
    if (value === null) return;
    const stamp = unwrapMs(value);
    if (seen.has(stamp)) return;
    seen.add(stamp);
    frames.push({ stamp, presented });
  };
  const end = performance.now() + ms;
  await new Promise((done) => {
    setTimeout(done, ms + 2000);
    if (source === 'webrtc') {
      const v = window.kelpie.video;
      const onFrame = (now, meta) => {
        look(v, performance.timeOrigin + (meta.expectedDisplayTime ?? now));
        if (performance.now() < end) v.requestVideoFrameCallback(onFrame);
        else done();
      };
      v.requestVideoFrameCallback(onFrame);
    } else {
      // Called right after each frame is drawn on the canvas.
      const canvas = window.kelpie.canvas;
      const stop = window.kelpie.onFrame((presentedMs) => {
        look(canvas, presentedMs);
        if (performance.now() >= end) {
          stop();
          done();
        }
      });
      setTimeout(() => {
        stop();
        done();
      }, ms);
    }
  });
  node.disconnect();
  input.disconnect(node);
  mute.disconnect();
  if (source === 'webrtc') await ctx.close();
  return { frames, onsets };
}
