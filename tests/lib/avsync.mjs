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
 * heard beeps for `ms`. `source` is 'webrtc' (the peer connection's audio track) or 'node'
 * (window.kelpieSound.tap(), an AudioNode carrying the sound the page plays).
 * Needs window.__stamp (tests/lib/stamp.mjs) installed.
 */
export async function recordAvSyncInPage({ ms, source }) {
  const v = window.kelpie.video;
  const { decodeStamp, unwrapMs, STAMP } = window.__stamp;
  const ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  await ctx.resume();
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
    registerProcessor('kelpie-onsets', Onsets);`;
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], { type: 'application/javascript' })));
  const node = new AudioWorkletNode(ctx, 'kelpie-onsets');
  let input;
  if (source === 'webrtc') {
    const r = window.kelpie.pc?.getReceivers().find((x) => x.track.kind === 'audio');
    if (!r) return { error: 'no audio receiver' };
    input = ctx.createMediaStreamSource(new MediaStream([r.track]));
    input.connect(node);
  } else {
    const tap = window.kelpieSound?.tap?.();
    if (!tap) return { error: 'the page offers no sound tap' };
    // The tap lives in the page's own AudioContext: bridge it through a MediaStream.
    const dest = tap.context.createMediaStreamDestination();
    tap.connect(dest);
    input = ctx.createMediaStreamSource(dest.stream);
    input.connect(node);
  }
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
  const end = performance.now() + ms;
  await new Promise((done) => {
    const onFrame = (now, meta) => {
      g.drawImage(v, 0, 0, STAMP.width, STAMP.height, 0, 0, STAMP.width, STAMP.height);
      const value = decodeStamp(g.getImageData(0, 0, STAMP.width, STAMP.height).data, STAMP.width, STAMP.height, 1);
      if (value !== null) {
        const stamp = unwrapMs(value);
        if (!seen.has(stamp)) {
          seen.add(stamp);
          frames.push({ stamp, presented: performance.timeOrigin + (meta.expectedDisplayTime ?? now) });
        }
      }
      if (performance.now() < end) v.requestVideoFrameCallback(onFrame);
      else done();
    };
    v.requestVideoFrameCallback(onFrame);
    setTimeout(done, ms + 2000);
  });
  node.disconnect();
  input.disconnect();
  await ctx.close();
  return { frames, onsets };
}
