"""StreamSpeech's names beside ours, in one table each layer reads: the training flags and
registry names that mean the same here (aliases), and those that are accepted because ours always
does what they ask. A StreamSpeech name whose meaning differs is not here: it is refused where it is
parsed, with a message naming ours (docs/from_streamspeech.md lists both).
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = [
    "TASK",
    "CRITERION",
    "ARCH",
    "MODEL_FLAGS",
    "MODEL_FLAGS_ALWAYS_ON",
    "AGENT_FLAGS_UNUSED",
    "AGENT_OUTPUT_FILES",
    "CHECKPOINT_PARTS",
    "MT_DECODER_PREFIX",
    "LAYER_NAMES",
    "STACK_NORM",
]

# fairseq registry names: theirs -> ours
TASK = ("speech_to_speech_ctc", "echostream_speech_to_speech")
CRITERION = ("speech_to_unit_2pass_ctc_asr_st", "echostream_multitask")
# their model: StreamSpeech's chunk Conformer and decoders, which is our baseline architecture
ARCH = ("streamspeech", "echostream_conformer")

# model flags of the same meaning: theirs -> our flags. Their "decoder" is the unit decoder, and
# its dimension and heads size their MT decoder too; where their flags size the MT decoder they win
# over the multitask YAML's decoder_args, as in StreamSpeech (ours otherwise lose to the YAML)
MODEL_FLAGS: Dict[str, Tuple[str, ...]] = {
    "--translation-decoder-layers": ("--mt-decoder-layers",),
    "--synthesizer-encoder-layers": ("--t2u-encoder-layers",),
    "--decoder-layers": ("--unit-decoder-layers",),
    "--decoder-embed-dim": ("--unit-decoder-embed-dim", "--mt-decoder-embed-dim"),
    "--decoder-ffn-embed-dim": ("--unit-decoder-ffn-embed-dim",),
    "--decoder-attention-heads": ("--unit-decoder-attention-heads", "--mt-decoder-attention-heads"),
    "--chunk-size": ("--chunk-length",),
    "--relu-dropout": ("--activation-dropout",),
}

# their switches that ask for what ours always does
MODEL_FLAGS_ALWAYS_ON: Dict[str, str] = {
    "--uni-encoder": "every encoder here is unidirectional (causal)",
    "--share-decoder-input-output-embed": "the MT decoder's output projection is tied to its embedding",
}

# their agents parse these and never read them; here too they change nothing
AGENT_FLAGS_UNUSED = ("--lagging-k2", "--stride-n2", "--segment-size", "--unit-per-subword", "--global-stats")

# the files their agents write with --extra-output-dir: ours -> theirs
AGENT_OUTPUT_FILES: Dict[str, str] = {"asr.txt": "asr.txt", "translation.txt": "st.txt", "units.txt": "unit.txt"}

# a StreamSpeech checkpoint's parts outside its encoder: its state-dict prefix -> our module's
# (its "decoder" is the unit decoder; its MT decoder is the first-pass "target_unigram_decoder")
CHECKPOINT_PARTS: Dict[str, str] = {
    "source_unigram_decoder.": "asr_ctc.",
    "ctc_target_unigram_decoder.": "st_ctc.head.",
    "target_unigram_decoder.": "decoder.",
    "synthesizer_encoder.": "t2u_encoder.",
    "decoder.": "unit_decoder.",
}
MT_DECODER_PREFIX = "target_unigram_decoder."

# names inside its Transformer layers and stacks (fairseq's) -> ours
LAYER_NAMES: Dict[str, str] = {
    "self_attn_layer_norm": "self_attn_norm",
    "encoder_attn_layer_norm": "cross_attn_norm",
    "encoder_attn": "cross_attn",
    "final_layer_norm": "ffn_norm",
    "fc1": "ffn_in",
    "fc2": "ffn_out",
}
STACK_NORM = ("layer_norm", "final_norm")  # a stack's last LayerNorm
