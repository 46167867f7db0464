"""Simultaneous speech-to-speech translation with an EchoStream model (SimulEval agent).

    simuleval --agent agents/echostream_s2st_agent.py --source-segment-size 320 \\
      --user-dir echostream_fairseq/evaluation/asr_bleu \\
      --source DATA/simuleval/test.source --target DATA/simuleval/test.target \\
      --model-path CKPT --data-bin DATA --vocoder G --vocoder-cfg G.json --dur-prediction \\
      --output OUT --quality-metrics ASR_BLEU_OFFLINE --asr-bleu-lm-text ENGLISH.txt \\
      --latency-metrics StartOffset EndOffset ATD

Speech in, speech out: StreamSpeech's CTC READ/WRITE policy on an incremental encoder, MT decoder,
text-to-unit stack and vocoder (see echostream_fairseq/streaming/translator.py).
"""

from simuleval.agents import SpeechToSpeechAgent
from simuleval.utils import entrypoint

from echostream_fairseq.agents.simuleval_agent import EchoStreamAgentMixin, add_agent_args


@entrypoint
class EchoStreamS2STAgent(EchoStreamAgentMixin, SpeechToSpeechAgent):
    output = "speech"

    @staticmethod
    def add_args(parser):
        add_agent_args(parser, speech_output=True)

    def policy(self):
        return self.speak()
