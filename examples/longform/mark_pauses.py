"""How long the ASR CTC stays silent after each sentence-end mark it writes.

    .venv/bin/python examples/longform/mark_pauses.py CKPT DATA WAV_LIST [--chunk-ms 320]

Runs the encoder and the ASR CTC head over each listed wav (offline, under the streaming chunk
mask, which is what the streaming encoder computes) and prints one line per mark: the wav, the
mark's encoder frame, the frames from the ASR subword before it, the frames of pause after it
(blank or the mark repeated) before the next subword or the end, and the subwords on either side.
A mark inside a single sentence is one followed by a subword; at a sentence boundary of a long
stream the speaker's pause follows it. ``--sentence-mark-pause-ms`` (docs/longform.md) tells the
two apart by that pause.
"""

from __future__ import annotations

import argparse

import torch

from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.modules.ctc import CTC_BLANK
from echostream_fairseq.streaming.features import FbankStream
from echostream_fairseq.streaming.loading import load_translator
from echostream_fairseq.streaming.options import TranslatorOptions


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model_path")
    p.add_argument("data")
    p.add_argument("wav_list", help="a file of wav paths, one per line (a SimulEval source file)")
    p.add_argument("--chunk-ms", type=int, default=320)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    options = TranslatorOptions(output="asr", source_segment_size=args.chunk_ms, asr_sentence_ends="on")
    setup = load_translator(args.model_path, args.data, options).setup
    model, rules, source = setup.model, setup.rules, setup.dictionaries.source
    mark = rules.asr_mark
    print("wav\tframe\tframes_before\tpause_frames_after\tsubword_before\tsubword_after")
    for path in open(args.wav_list).read().split():
        fbank = FbankStream(setup.cmvn)
        features, _ = fbank.step(read_audio(path, 16000), fbank.initial_state())
        with torch.no_grad():
            encoded = model.encoder(
                features.unsqueeze(0), torch.tensor([features.size(0)]), chunk_length=setup.chunk_length
            )
            logits = model.ctc_outputs(encoded)["asr_logits"][0]
        logits[:, [b for b in rules.source_banned if b != mark]] = float("-inf")
        labels = logits.argmax(-1).tolist()
        events, previous = [], CTC_BLANK  # (frame, label) of each new token or mark
        for frame, label in enumerate(labels):
            if label != previous and label != CTC_BLANK:
                events.append((frame, label))
            previous = label
        for i, (frame, label) in enumerate(events):
            if label != mark:
                continue
            before = frame - events[i - 1][0] if i else frame
            after = next((f for f, lab in events[i + 1 :] if lab != mark), len(labels)) - frame - 1
            left = source[events[i - 1][1]] if i else "<start>"
            right = next((source[lab] for _, lab in events[i + 1 :] if lab != mark), "<end>")
            print(f"{path.split('/')[-1]}\t{frame}\t{before}\t{after}\t{left}\t{right}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
