// live_nb media widget front end: mic/camera capture to the kernel, reply playback from it.
//
// Why this shape (media.md has the measurements):
// - Capture lives in `initialize` (once per model), not `render` (once per view), so showing the
//   widget twice never doubles the stream. Views only draw the shared state.
// - Audio: MediaStream -> AudioContext (16 kHz when the browser allows, else native rate and the
//   worklet resamples) -> AudioWorklet -> Int16 chunks of 100 ms -> model.send(msg, undefined, [buf]).
//   (`model.send(msg, [buf])` silently drops the buffer.)
// - Video: a hidden muted <video> on the same stream, drawn to a canvas every frame_interval s and
//   sent as JPEG. Tracks we did not open (an ipywebrtc CameraStream's) are never stopped.
// - Playback: a second AudioContext at 24 kHz with a queueing AudioWorklet; `interrupt` clears the
//   queue inside one render quantum. Buffers from Python arrive as DataView: read with getInt16.
// - The worklets are strings turned into Blob URLs: no CDN, no extra files to serve.
// - Untrusted text (the reply's output transcription, error messages, device labels) is set as
//   textContent only, never as HTML, and shown as plain text, not Markdown: the sanitiser
//   JupyterLab applies to untrusted outputs does not run inside a widget view.

const CAPTURE_WORKLET = `
const LOUD = 0.02;  // about -34 dBFS: a sample above it counts as voice for the timing record
class LiveNbCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.target = o.targetRate || 16000;
    this.size = o.chunkSamples || 1600;
    this.ratio = sampleRate / this.target;
    this.buf = new Int16Array(this.size);
    this.n = 0;
    this.sumSq = 0;
    this.firstLoud = -1;
    this.lastLoud = -1;
    this.pos = 0;
    this.prev = 0;
    // Two one-pole low-pass stages before decimation, so resampling 48 kHz -> 16 kHz does not
    // fold everything above 8 kHz back into the speech band.
    this.alpha = this.ratio > 1 ? 1 - Math.exp(-2 * Math.PI * 0.45 * this.target / sampleRate) : 1;
    this.lp1 = 0;
    this.lp2 = 0;
    this.scratch = new Float32Array(128);
  }
  emit(x) {
    const v = x < -1 ? -1 : x > 1 ? 1 : x;
    this.buf[this.n++] = v < 0 ? v * 32768 : v * 32767;
    this.sumSq += v * v;
    if (v > LOUD || v < -LOUD) {
      if (this.firstLoud < 0) this.firstLoud = this.n - 1;
      this.lastLoud = this.n - 1;
    }
    if (this.n === this.size) {
      const rms = Math.sqrt(this.sumSq / this.size);
      this.port.postMessage({ pcm: this.buf.buffer, rms, firstLoud: this.firstLoud, lastLoud: this.lastLoud },
        [this.buf.buffer]);
      this.buf = new Int16Array(this.size);
      this.n = 0;
      this.sumSq = 0;
      this.firstLoud = -1;
      this.lastLoud = -1;
    }
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const len = input[0].length;
    if (this.scratch.length < len) this.scratch = new Float32Array(len);
    const f = this.scratch;
    const channels = input.length;
    for (let i = 0; i < len; i++) {
      let x = 0;
      for (let c = 0; c < channels; c++) x += input[c][i];
      x /= channels;
      if (this.alpha < 1) {
        this.lp1 += this.alpha * (x - this.lp1);
        this.lp2 += this.alpha * (this.lp1 - this.lp2);
        x = this.lp2;
      }
      f[i] = x;
    }
    if (this.ratio === 1) {
      for (let i = 0; i < len; i++) this.emit(f[i]);
      return true;
    }
    // Linear interpolation; pos is relative to this block, -1 meaning the previous block's last sample.
    let p = this.pos;
    while (p <= len - 1) {
      const i0 = Math.floor(p);
      const frac = p - i0;
      const x0 = i0 < 0 ? this.prev : f[i0];
      const x1 = i0 + 1 < len ? f[i0 + 1] : x0;
      this.emit(x0 + (x1 - x0) * frac);
      p += this.ratio;
    }
    this.pos = p - len;
    this.prev = f[len - 1];
    return true;
  }
}
registerProcessor('live-nb-capture', LiveNbCapture);
`;

const PLAYER_WORKLET = `
class LiveNbPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.prebuffer = o.prebuffer || 3600;
    this.q = [];
    this.off = 0;
    this.queued = 0;
    this.played = 0;
    this.started = false;
    this.ending = false;
    this.underruns = 0;
    this.interrupts = 0;
    this.blocks = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'chunk') {
        this.q.push(m.samples);
        this.queued += m.samples.length;
      } else if (m.type === 'clear') {
        this.q = [];
        this.off = 0;
        this.queued = 0;
        this.started = false;
        this.ending = false;
        this.interrupts++;
        this.report(true);
      } else if (m.type === 'end') {
        this.ending = true;
      }
    };
  }
  report(cleared) {
    this.port.postMessage({
      played: this.played, queued: this.queued, playing: this.started,
      underruns: this.underruns, interrupts: this.interrupts, cleared: !!cleared,
    });
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.started && this.queued > 0 && (this.queued >= this.prebuffer || this.ending)) {
      this.started = true;
      this.port.postMessage({ start: true });  // the main thread timestamps the first sample played
    }
    let i = 0;
    if (this.started) {
      while (i < out.length && this.q.length) {
        const head = this.q[0];
        const n = Math.min(out.length - i, head.length - this.off);
        out.set(head.subarray(this.off, this.off + n), i);
        i += n;
        this.off += n;
        if (this.off === head.length) { this.q.shift(); this.off = 0; }
      }
      this.played += i;
      this.queued -= i;
      if (this.q.length === 0) {
        if (!this.ending) this.underruns++;
        this.started = false;
        this.ending = false;
        this.report();
      }
    }
    for (; i < out.length; i++) out[i] = 0;
    if (++this.blocks % 8 === 0) this.report();
    return true;
  }
}
registerProcessor('live-nb-player', LiveNbPlayer);
`;

const urls = {};
function workletURL(name, src) {
  if (!urls[name]) urls[name] = URL.createObjectURL(new Blob([src], { type: 'application/javascript' }));
  return urls[name];
}

// Every widget's state, for tests and debugging: globalThis.__live_nb_media.find(s => s.label === ...).
const registry = (globalThis.__live_nb_media = globalThis.__live_nb_media || []);

const ERRORS = {
  NotAllowedError: ['permission', 'Permission to use the microphone or camera was refused. Allow it in the browser\'s site settings, then run the cell again (an ipywebrtc CameraStream remembers a refusal: make a new one).'],
  SecurityError: ['permission', 'The browser refused media capture on this page (it needs https or localhost).'],
  NotFoundError: ['no_device', 'No microphone or camera was found. Connect one, or turn off the kind you do not have (%live camera off).'],
  OverconstrainedError: ['no_device', 'No device matches the requested settings.'],
  NotReadableError: ['device_busy', 'The microphone or camera is in use by another program, or the system blocked it.'],
  AbortError: ['device_busy', 'The device could not be started.'],
};

function describeError(err) {
  const known = err && ERRORS[err.name];
  if (known) return known;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return ['unsupported', 'This browser page cannot capture media (no navigator.mediaDevices: it needs https or localhost).'];
  }
  return ['unsupported', `Capture failed: ${err && err.message ? err.message : err}`];
}

function newEpoch() {
  return `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
}

function makeState(model) {
  const st = {
    label: model.get('label'),
    role: model.get('role'),
    captureState: 'idle',
    error: '',
    errorKind: '',
    level: 0,
    chunksSent: 0,
    framesSent: 0,
    frameWidth: 0,
    frameHeight: 0,
    frameBytes: 0,
    captureRate: 0,
    inputContext: '',
    outputContext: '',
    playerState: 'idle',
    playedSamples: 0,
    queuedSamples: 0,
    underruns: 0,
    interrupts: 0,
    chunksPlayed: 0,
    dropped: 0,
    needsGesture: false,
    deviceLabels: '',
    listeners: new Set(),
    log: [],
    clears: 0,
    interruptAt: 0,
    playedAtInterrupt: 0,
    clearLatencyMs: -1,
    playedBeforeClear: -1,
    // Timing records (performance.now() ms, bounded): spans of captured voice [start, end] merged
    // across pauses under 500 ms, and the moments reply playback started.
    voice: [],
    playStarts: [],
    notify() { for (const f of st.listeners) f(); },
  };
  return st;
}

function setTraits(model, values) {
  let changed = false;
  for (const [k, v] of Object.entries(values)) {
    if (model.get(k) !== v) { model.set(k, v); changed = true; }
  }
  if (changed) model.save_changes();
}

// ---------------------------------------------------------------------------------------------
// Playback of the session's replies.
// ---------------------------------------------------------------------------------------------

class Player {
  constructor(model, st) {
    this.model = model;
    this.st = st;
    this.ctx = null;
    this.node = null;
    this.ready = null;
    this.lastSync = 0;
    this.syncTimer = null;
    this.generation = 0;
    this.waiting = 0;
    this.chain = Promise.resolve();
  }

  ensure() {
    if (!this.ready) this.ready = this.open();
    return this.ready;
  }

  async open() {
    let ctx;
    try {
      ctx = new AudioContext({ sampleRate: 24000, latencyHint: 'interactive' });
    } catch (e) {
      ctx = new AudioContext();
    }
    this.ctx = ctx;
    await ctx.audioWorklet.addModule(workletURL('player', PLAYER_WORKLET));
    const node = new AudioWorkletNode(ctx, 'live-nb-player', {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { prebuffer: Math.round(0.15 * ctx.sampleRate) },
    });
    node.connect(ctx.destination);
    node.port.onmessage = (e) => this.onReport(e.data);
    this.node = node;
    ctx.onstatechange = () => this.onContextState();
    this.onContextState();
    return node;
  }

  onContextState() {
    const st = this.st;
    st.outputContext = this.ctx ? this.ctx.state : '';
    if (st.outputContext === 'suspended') st.playerState = 'suspended';
    else if (st.playerState === 'suspended') st.playerState = 'idle';
    st.needsGesture = st.outputContext === 'suspended' || st.inputContext === 'suspended';
    st.notify();
    this.sync(true);
  }

  onReport(r) {
    const st = this.st;
    if (r.start) {
      // When sound started coming out (after a pause, a barge-in or at the first chunk): the
      // voice latency bench pairs these with the ends of the user's speech (st.voice).
      st.playStarts.push(performance.now());
      if (st.playStarts.length > 200) st.playStarts.splice(0, 100);
      return;
    }
    const scale = this.ctx ? 24000 / this.ctx.sampleRate : 1;
    st.playedSamples = Math.round(r.played * scale);
    if (r.cleared) {
      // How fast a barge-in silenced the player: interrupt message -> queue dropped in the worklet.
      st.clears++;
      st.clearLatencyMs = performance.now() - st.interruptAt;
      st.playedBeforeClear = st.playedSamples - st.playedAtInterrupt;
    }
    st.queuedSamples = Math.round(r.queued * scale);
    st.underruns = r.underruns;
    if (st.playerState !== 'suspended') {
      if (r.playing) st.playerState = 'playing';
      else if (r.queued > 0) st.playerState = 'buffering';
      else if (st.playerState !== 'interrupted') st.playerState = 'idle';
    }
    st.notify();
    this.sync(false);
  }

  // Python sees played_samples / player_state at most 4 times a second.
  sync(force) {
    const now = performance.now();
    const push = () => {
      this.syncTimer = null;
      this.lastSync = performance.now();
      setTraits(this.model, {
        played_samples: this.st.playedSamples,
        player_state: this.st.playerState,
        output_context_state: this.st.outputContext,
      });
    };
    if (force || now - this.lastSync > 250) push();
    else if (!this.syncTimer) this.syncTimer = setTimeout(push, 250);
  }

  // Messages must be handled strictly in order: JupyterLab delivers several in one task, so an
  // `await` in one would let a later `interrupt` overtake earlier chunks. Until the worklet is
  // ready everything waits in one chain; after that, handling is synchronous.
  handle(msg, buffers) {
    if (this.node && this.waiting === 0) {
      this.handleNow(msg, buffers);
      return Promise.resolve();
    }
    this.waiting = (this.waiting || 0) + 1;
    this.chain = (this.chain || Promise.resolve())
      .then(() => this.ensure())
      .then(() => this.handleNow(msg, buffers))
      .finally(() => { this.waiting--; });
    return this.chain;
  }

  handleNow(msg, buffers) {
    const st = this.st;
    const node = this.node;
    // A short history of what the kernel sent, for debugging and tests (bounded).
    st.log.push([Math.round(performance.now()), msg.type, msg.generation || 0, buffers && buffers[0] ? buffers[0].byteLength : 0]);
    if (st.log.length > 400) st.log.splice(0, 100);
    if (msg.type === 'play') {
      if (!this.model.get('playback')) return;
      // A chunk of a reply that was interrupted after it was sent: never play it.
      if ((msg.generation || 0) < this.generation) { st.dropped++; return; }
      const dv = buffers && buffers[0];
      if (!dv) return;
      const view = dv instanceof DataView ? dv : new DataView(dv.buffer || dv, dv.byteOffset || 0, dv.byteLength);
      const n = view.byteLength >> 1;
      let samples = new Float32Array(n);
      for (let i = 0; i < n; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
      const rate = msg.rate || 24000;
      if (rate !== this.ctx.sampleRate) samples = resample(samples, rate, this.ctx.sampleRate);
      if (st.playerState === 'interrupted') st.playerState = 'buffering';
      st.chunksPlayed++;
      node.port.postMessage({ type: 'chunk', samples }, [samples.buffer]);
      if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    } else if (msg.type === 'interrupt') {
      this.generation = Math.max(this.generation, msg.generation || 0);
      st.interruptAt = performance.now();
      st.playedAtInterrupt = st.playedSamples;
      st.interrupts++;
      st.playerState = 'interrupted';
      node.port.postMessage({ type: 'clear' });
      st.notify();
      this.sync(true);
    } else if (msg.type === 'turn_complete') {
      node.port.postMessage({ type: 'end' });
    }
  }

  resume() {
    if (this.ctx && this.ctx.state === 'suspended') return this.ctx.resume().catch(() => {});
    return Promise.resolve();
  }

  close() {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (this.ctx) this.ctx.close().catch(() => {});
  }
}

// The chunk just arrived, so its last sample was captured about now: place its loud samples in time.
function noteVoice(st, data, size) {
  const now = performance.now();
  const start = now - ((size - data.firstLoud) * 1000) / 16000;
  const end = now - ((size - 1 - data.lastLoud) * 1000) / 16000;
  const last = st.voice[st.voice.length - 1];
  if (last && start - last[1] < 500) last[1] = end;
  else st.voice.push([start, end]);
  if (st.voice.length > 200) st.voice.splice(0, 100);
}

function resample(x, from, to) {
  const n = Math.max(1, Math.round(x.length * to / from));
  const y = new Float32Array(n);
  const step = from / to;
  for (let i = 0; i < n; i++) {
    const p = i * step;
    const i0 = Math.floor(p);
    const a = x[Math.min(i0, x.length - 1)];
    const b = x[Math.min(i0 + 1, x.length - 1)];
    y[i] = a + (b - a) * (p - i0);
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Capture from the microphone and camera.
// ---------------------------------------------------------------------------------------------

class Capture {
  constructor(model, st, player) {
    this.model = model;
    this.st = st;
    this.player = player;
    this.stream = null;
    this.owned = false;
    this.sourceRef = null;
    this.audio = null;
    this.video = null;
    this.chain = Promise.resolve();
    this.closed = false;
  }

  // Serialise every change (audio/video/source toggles) so two syncs never race.
  sync() {
    this.chain = this.chain.then(() => this.apply()).catch((err) => this.fail(err));
    return this.chain;
  }

  fail(err) {
    const [kind, message] = err && err.liveKind ? [err.liveKind, err.message] : describeError(err);
    this.st.captureState = 'error';
    this.st.error = message;
    this.st.errorKind = kind;
    this.st.notify();
    setTraits(this.model, { capture_state: 'error', error: message, error_kind: kind });
  }

  setState(s) {
    this.st.captureState = s;
    this.st.notify();
    setTraits(this.model, { capture_state: s });
  }

  async apply() {
    if (this.closed) return;
    const m = this.model;
    const wantAudio = m.get('audio');
    const wantVideo = m.get('video');
    const ref = m.get('source') || null;
    const wanted = `${m.get('audio_device')}|${m.get('video_device')}`;
    if (ref !== this.sourceRef) this.teardown();
    else if (this.owned && this.stream && wanted !== this.devicesOpened) this.teardown(); // another device chosen
    if (!wantAudio && this.audio) this.stopAudio();
    if (!wantVideo && this.video) this.stopVideo();
    if (!wantAudio && !wantVideo) {
      this.releaseStream();
      if (this.st.captureState !== 'idle' && this.st.captureState !== 'error') this.setState('stopped');
      return;
    }
    if (!ref && this.stream && this.owned) {
      const has = (kind) => this.stream.getTracks().some((t) => t.kind === kind && t.readyState === 'live');
      if ((wantAudio && !has('audio')) || (wantVideo && !has('video'))) {
        // Our own stream lacks a kind now wanted: reopen it with both.
        this.stopAudio();
        this.stopVideo();
        this.releaseStream();
      }
    }
    if (!this.stream) {
      this.setState('starting');
      await this.acquire(ref, wantAudio, wantVideo);
    }
    if (!this.owned && !this.muteTimer) {
      // ipywebrtc's preview <video> plays the stream's audio: the mic would echo through the
      // speakers (and back into the mic). Mute every element showing our stream, now and later.
      this.mutePreviews();
      this.muteTimer = setInterval(() => this.mutePreviews(), 1000);
    }
    if (wantAudio && !this.audio) await this.startAudio();
    if (wantVideo && !this.video) await this.startVideo();
    this.st.error = '';
    this.st.errorKind = '';
    setTraits(m, { error: '', error_kind: '' });
    this.setState('streaming');
    this.player.resume();
  }

  async acquire(ref, wantAudio, wantVideo) {
    this.sourceRef = ref;
    if (ref) {
      let source;
      try {
        source = await this.model.widget_manager.get_model(String(ref).slice('IPY_MODEL_'.length));
      } catch (e) {
        throw Object.assign(new Error(`The source widget could not be found: ${e}`), { liveKind: 'source' });
      }
      if (!source || typeof source.captureStream !== 'function') {
        throw Object.assign(new Error('The source is not an ipywebrtc MediaStream (no captureStream()).'), { liveKind: 'source' });
      }
      this.stream = await source.captureStream();
      this.owned = false;
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new TypeError('no mediaDevices');
    const audioId = this.model.get('audio_device');
    const videoId = this.model.get('video_device');
    const constraints = {
      audio: wantAudio ? { channelCount: 1, echoCancellation: true, noiseSuppression: true,
                           ...(audioId ? { deviceId: { exact: audioId } } : {}) } : false,
      video: wantVideo ? { width: { ideal: 1280 }, height: { ideal: 720 },
                           ...(videoId ? { deviceId: { exact: videoId } } : {}) } : false,
    };
    this.stream = await navigator.mediaDevices.getUserMedia(constraints);
    this.owned = true;
    this.devicesOpened = `${audioId}|${videoId}`;
    this.st.deviceLabels = this.stream.getTracks().map((t) => t.label).join(' + ');
    // Labels are only readable once permission is given: list the inputs now.
    try {
      const all = await navigator.mediaDevices.enumerateDevices();
      const devices = all.filter((d) => d.kind === 'audioinput' || d.kind === 'videoinput')
        .map((d) => ({ kind: d.kind, deviceId: d.deviceId, label: d.label }));
      this.model.set('devices', devices);
      this.model.save_changes();
    } catch (e) { /* listing is a convenience */ }
  }

  async startAudio() {
    const track = this.stream.getAudioTracks()[0];
    if (!track) {
      throw Object.assign(new Error('The source stream has no audio track: make the CameraStream with audio=True, e.g. CameraStream.facing_user(audio=True).'), { liveKind: 'source' });
    }
    let ctx;
    const asked = Number(this.model.get('capture_context_rate')) || 0;
    try {
      ctx = asked ? new AudioContext({ sampleRate: asked, latencyHint: 'interactive' }) : new AudioContext();
    } catch (e) {
      ctx = new AudioContext(); // e.g. Firefox refuses a 16 kHz context on a 48 kHz stream: resample
    }
    const a = { ctx, epoch: newEpoch(), seq: 0, node: null, src: null, check: null };
    this.audio = a;
    await ctx.audioWorklet.addModule(workletURL('capture', CAPTURE_WORKLET));
    let src;
    try {
      src = ctx.createMediaStreamSource(new MediaStream([track]));
    } catch (e) {
      // A 16 kHz context may refuse a 48 kHz stream (Firefox): reopen at the native rate.
      await ctx.close();
      a.ctx = ctx = new AudioContext();
      await ctx.audioWorklet.addModule(workletURL('capture', CAPTURE_WORKLET));
      src = ctx.createMediaStreamSource(new MediaStream([track]));
    }
    const node = new AudioWorkletNode(ctx, 'live-nb-capture', {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { targetRate: 16000, chunkSamples: 1600 },
    });
    node.port.onmessage = (e) => this.onChunk(a, e.data);
    src.connect(node);
    node.connect(ctx.destination); // the worklet writes silence; the connection keeps it pulled
    a.node = node;
    a.src = src;
    this.st.captureRate = ctx.sampleRate;
    const onState = () => {
      this.st.inputContext = ctx.state;
      this.st.needsGesture = ctx.state === 'suspended' || this.st.outputContext === 'suspended';
      this.st.notify();
      setTraits(this.model, { input_context_state: ctx.state });
    };
    ctx.onstatechange = onState;
    if (ctx.state === 'suspended') await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 300))]);
    onState();
    setTraits(this.model, { capture_rate: ctx.sampleRate });
  }

  onChunk(a, data) {
    if (this.audio !== a) return;
    const st = this.st;
    st.level = data.rms;
    if (data.lastLoud >= 0) noteVoice(st, data, 1600);
    if (this.model.get('muted')) { st.notify(); return; }
    this.model.send({ type: 'audio', seq: a.seq++, epoch: a.epoch, rate: 16000 }, undefined, [data.pcm]);
    st.chunksSent++;
    st.notify();
  }

  stopAudio() {
    const a = this.audio;
    if (!a) return;
    this.audio = null;
    try { a.src && a.src.disconnect(); a.node && a.node.disconnect(); } catch (e) { /* already gone */ }
    a.ctx.close().catch(() => {});
    this.st.inputContext = '';
    this.st.level = 0;
    this.model.send({ type: 'audio_end' });
  }

  async startVideo() {
    const track = this.stream.getVideoTracks()[0];
    if (!track) {
      throw Object.assign(new Error('The source stream has no video track: use a CameraStream with video, or %live mic on for audio only.'), { liveKind: 'source' });
    }
    const el = document.createElement('video');
    el.muted = true; // the preview must not echo the mic through the speakers
    el.playsInline = true;
    el.autoplay = true;
    el.className = 'live-nb-media-grabber';
    el.srcObject = new MediaStream([track]);
    document.body.appendChild(el);
    await el.play().catch(() => {});
    const v = { el, canvas: document.createElement('canvas'), epoch: newEpoch(), seq: 0, timer: null, busy: false };
    this.video = v;
    const schedule = () => {
      if (this.video !== v) return;
      const ms = Math.max(0.1, Number(this.model.get('frame_interval')) || 1) * 1000;
      v.timer = setTimeout(() => { this.grab(v); schedule(); }, ms);
    };
    schedule();
  }

  grab(v) {
    if (this.video !== v || v.busy || v.el.readyState < 2 || !v.el.videoWidth) return;
    const w0 = v.el.videoWidth;
    const h0 = v.el.videoHeight;
    const scale = Math.min(1, (this.model.get('frame_size') || 768) / Math.max(w0, h0));
    const w = Math.max(1, Math.round(w0 * scale));
    const h = Math.max(1, Math.round(h0 * scale));
    v.canvas.width = w;
    v.canvas.height = h;
    v.canvas.getContext('2d').drawImage(v.el, 0, 0, w, h);
    v.busy = true;
    v.canvas.toBlob(async (blob) => {
      try {
        if (!blob || this.video !== v) return;
        const buf = await blob.arrayBuffer();
        this.model.send({ type: 'video', seq: v.seq++, epoch: v.epoch, width: w, height: h }, undefined, [buf]);
        const st = this.st;
        st.framesSent++;
        st.frameWidth = w;
        st.frameHeight = h;
        st.frameBytes = buf.byteLength;
        st.notify();
      } finally {
        v.busy = false;
      }
    }, 'image/jpeg', Number(this.model.get('jpeg_quality')) || 0.8);
  }

  stopVideo() {
    const v = this.video;
    if (!v) return;
    this.video = null;
    clearTimeout(v.timer);
    v.el.srcObject = null;
    v.el.remove();
  }

  mutePreviews() {
    if (!this.stream) return;
    for (const v of document.querySelectorAll('video')) {
      if (v.srcObject === this.stream && !v.muted) {
        v.muted = true;
        this.st.mutedPreviews = (this.st.mutedPreviews || 0) + 1;
      }
    }
  }

  releaseStream() {
    if (this.muteTimer) { clearInterval(this.muteTimer); this.muteTimer = null; }
    // Never stop tracks we did not open: the ipywebrtc preview shares them.
    if (this.stream && this.owned) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.owned = false;
  }

  teardown() {
    this.stopAudio();
    this.stopVideo();
    this.releaseStream();
    this.sourceRef = null;
  }

  resume() {
    if (this.audio && this.audio.ctx.state === 'suspended') return this.audio.ctx.resume().catch(() => {});
    return Promise.resolve();
  }

  close() {
    this.closed = true;
    this.teardown();
  }
}

// ---------------------------------------------------------------------------------------------
// anywidget entry points.
// ---------------------------------------------------------------------------------------------

// One state per widget model. anywidget gives initialize and each view its own proxy of the
// model, so the key is a synced id, not the proxy object.
const states = new Map();

function stateOf(model) {
  const key = model.get('instance_id');
  let st = states.get(key);
  if (!st) {
    st = makeState(model);
    states.set(key, st);
  }
  return st;
}

function initialize({ model }) {
  const st = stateOf(model);
  registry.push(st);
  const player = new Player(model, st);
  st.player = player;
  // Prepare playback ahead of the first reply; the context may start suspended (autoplay rules).
  player.ensure().catch((e) => { st.playerState = 'error'; st.error = `Audio playback is unavailable: ${e}`; st.notify(); });
  const onCustom = (msg, buffers) => {
    try { player.handle(msg, buffers).catch((e) => console.warn('live_nb media:', e)); } catch (e) { console.warn('live_nb media:', e); }
  };
  model.on('msg:custom', onCustom);
  let capture = null;
  if (model.get('role') === 'streamer') {
    capture = new Capture(model, st, player);
    st.capture = capture;
    const resync = () => { capture.sync(); };
    model.on('change:audio', resync);
    model.on('change:video', resync);
    model.on('change:source', resync);
    model.on('change:audio_device', resync);
    model.on('change:video_device', resync);
    model.on('change:muted', () => {
      if (model.get('muted')) model.send({ type: 'audio_end' });
      st.notify();
    });
    // Not awaited: anywidget gives initialize about 2 s, and a permission prompt can take longer.
    capture.sync();
  }
  model.on('change:transcript', () => st.notify());
  model.on('change:token_rate', () => st.notify());
  model.on('change:error', () => st.notify());
  return () => {
    model.off('msg:custom', onCustom);
    if (capture) capture.close();
    player.close();
    const i = registry.indexOf(st);
    if (i >= 0) registry.splice(i, 1);
    states.delete(model.get('instance_id'));
  };
}

function button(text, onClick, cls) {
  const b = document.createElement('button');
  b.className = `jupyter-button live-nb-media-button ${cls || ''}`;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

function render({ model, el }) {
  const st = stateOf(model);
  const streamer = model.get('role') === 'streamer';
  el.classList.add('live-nb-media');
  const head = document.createElement('div');
  head.className = 'live-nb-media-head';
  const title = document.createElement('span');
  title.className = 'live-nb-media-title';
  const status = document.createElement('span');
  status.className = 'live-nb-media-status';
  head.append(title, status);

  const controls = document.createElement('div');
  controls.className = 'live-nb-media-controls';
  const meter = document.createElement('div');
  meter.className = 'live-nb-media-meter';
  meter.title = 'input level';
  const bar = document.createElement('div');
  bar.className = 'live-nb-media-meter-bar';
  meter.append(bar);
  const mute = button('Mute', () => { model.set('muted', !model.get('muted')); model.save_changes(); }, 'live-nb-media-mute');
  const stop = button('Stop', () => { model.set('audio', false); model.set('video', false); model.save_changes(); }, 'live-nb-media-stop');
  const enable = button('Enable audio', () => {
    // A click is the user gesture browsers require before an AudioContext may run.
    st.player.resume();
    if (st.capture) st.capture.resume();
    st.player.ensure().then(() => st.player.resume());
  }, 'live-nb-media-enable');
  if (streamer) controls.append(meter, mute, stop);
  controls.append(enable);

  const counters = document.createElement('div');
  counters.className = 'live-nb-media-counters';
  const reply = document.createElement('div');
  reply.className = 'live-nb-media-reply';
  const transcript = document.createElement('div');
  transcript.className = 'live-nb-media-transcript';
  const error = document.createElement('div');
  error.className = 'live-nb-media-error';
  error.setAttribute('role', 'alert');
  el.append(head, controls, counters, reply, transcript, error);

  const draw = () => {
    const label = model.get('label');
    title.textContent = `${streamer ? 'Mic/camera' : 'Reply audio'}${label ? ` · ${label}` : ''}`;
    const muted = model.get('muted');
    status.textContent = streamer ? (muted && st.captureState === 'streaming' ? 'muted' : st.captureState) : st.playerState;
    status.dataset.state = st.captureState;
    bar.style.width = `${Math.min(100, Math.round(Math.sqrt(st.level) * 100))}%`;
    meter.classList.toggle('live-nb-media-muted', !!muted);
    mute.textContent = muted ? 'Unmute' : 'Mute';
    enable.style.display = st.needsGesture ? '' : 'none';
    if (streamer) {
      const parts = [];
      if (st.capture && st.capture.audio) parts.push(`audio ${st.chunksSent} chunks (${(st.chunksSent / 10).toFixed(1)} s, ${st.captureRate} Hz capture)`);
      if (st.capture && st.capture.video) parts.push(`video ${st.framesSent} frames ${st.frameWidth}×${st.frameHeight}`);
      const rate = model.get('token_rate');
      if (rate) parts.push(`${rate.toFixed(1)} tokens/s`);
      counters.textContent = parts.join(' · ');
    }
    reply.textContent = `reply: ${st.playerState}, ${(st.playedSamples / 24000).toFixed(1)} s played` +
      (st.interrupts ? `, ${st.interrupts} interrupted` : '');
    transcript.textContent = model.get('transcript') || '';
    const shownError = st.error || model.get('error');
    error.textContent = st.needsGesture && !shownError
      ? 'The browser is holding audio until you click: press "Enable audio".'
      : shownError;
    error.style.display = error.textContent ? '' : 'none';
    el.dataset.captureState = st.captureState;
    el.dataset.playerState = st.playerState;
    el.dataset.playedSamples = String(st.playedSamples);
  };
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  };
  st.listeners.add(schedule);
  const onModel = () => schedule();
  model.on('change:muted', onModel);
  model.on('change:label', onModel);
  draw();
  return () => {
    st.listeners.delete(schedule);
    model.off('change:muted', onModel);
    model.off('change:label', onModel);
  };
}

export default { initialize, render };
