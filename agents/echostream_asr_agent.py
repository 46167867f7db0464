"""Streaming source transcription with an EchoStream model's ASR CTC head (SimulEval agent).

    simuleval --agent agents/echostream_asr_agent.py --source-segment-size 320 \\
      --source DATA/simuleval/test.source --target DATA/simuleval/test.src_text \\
      --model-path CKPT --data-bin DATA --output OUT --quality-metrics WER

Only the encoder and the ASR CTC head run; source words are written once complete.
"""

from simuleval.agents import SpeechToTextAgent
from simuleval.utils import entrypoint

from echostream_fairseq.agents.simuleval_agent import EchoStreamAgentMixin, add_agent_args


@entrypoint
class EchoStreamASRAgent(EchoStreamAgentMixin, SpeechToTextAgent):
    output = "asr"

    @staticmethod
    def add_args(parser):
        add_agent_args(parser, speech_output=False)

    def policy(self):
        return self.write_words()
