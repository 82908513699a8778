// An AudioWorklet tap: the level of every 128-sample block, and the samples
// themselves while recording. Runs on the audio thread; the page gets one
// message per block with the block's context time.
class Tap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.recording = false;
    this.port.onmessage = (e) => { this.recording = !!e.data.record; };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    let sum = 0;
    let peak = 0;
    for (let i = 0; i < channel.length; i++) {
      const v = channel[i];
      sum += v * v;
      const a = v < 0 ? -v : v;
      if (a > peak) peak = a;
    }
    const message = { t: currentTime, rms: Math.sqrt(sum / channel.length), peak };
    if (this.recording) message.samples = channel.slice();
    this.port.postMessage(message);
    return true;
  }
}

registerProcessor("va-tap", Tap);
