"""Simultaneous speech-to-text translation with an EchoStream model (SimulEval agent).

    simuleval --agent agents/echostream_s2tt_agent.py --source-segment-size 320 \\
      --source DATA/simuleval/test.source --target DATA/simuleval/test.target \\
      --model-path CKPT --data-bin DATA --output OUT --quality-metrics BLEU

Target words are written as soon as they are complete (the MT decoder has started the next word,
or the source ended).
"""

from simuleval.agents import SpeechToTextAgent
from simuleval.utils import entrypoint

from echostream_fairseq.agents.simuleval_agent import EchoStreamAgentMixin, add_agent_args


@entrypoint
class EchoStreamS2TTAgent(EchoStreamAgentMixin, SpeechToTextAgent):
    output = "text"

    @staticmethod
    def add_args(parser):
        add_agent_args(parser, speech_output=False)

    def policy(self):
        return self.write_words()
