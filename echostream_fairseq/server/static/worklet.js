// Collects the microphone's samples (at the AudioContext's rate, 16 kHz here) and posts them
// to the page in pieces of about 100 ms; outputs silence so the graph keeps pulling it.
class PcmSender extends AudioWorkletProcessor {
  constructor() {
    super();
    this.piece = new Float32Array(Math.round(sampleRate / 10));
    this.filled = 0;
  }
  process(inputs, outputs) {
    const input = inputs[0];
    if (input && input.length) {
      const channel = input[0];
      let i = 0;
      while (i < channel.length) {
        const n = Math.min(channel.length - i, this.piece.length - this.filled);
        this.piece.set(channel.subarray(i, i + n), this.filled);
        this.filled += n;
        i += n;
        if (this.filled === this.piece.length) {
          this.port.postMessage(this.piece.slice(0));
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm-sender", PcmSender);
