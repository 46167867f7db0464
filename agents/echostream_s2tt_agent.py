"""Simultaneous speech-to-text translation with an EchoStream model (SimulEval agent).

    simuleval --agent agents/echostream_s2tt_agent.py --source-segment-size 320 \\
      --source DATA/simuleval/test.source --target DATA/simuleval/test.target \\
      --model-path CKPT --data-bin DATA --output OUT --quality-metrics BLEU

Target words are written as soon as they are complete (the MT decoder has started the next word,
or the source ended).
"""

from simuleval.agents import SpeechToTextAgent
from simuleval.agents.actions import ReadAction, WriteAction
from simuleval.utils import entrypoint

from echostream_fairseq.streaming.simuleval_agent import EchoStreamAgentMixin, add_agent_args, complete_words


@entrypoint
class EchoStreamS2TTAgent(EchoStreamAgentMixin, SpeechToTextAgent):
    output = "text"

    @staticmethod
    def add_args(parser):
        add_agent_args(parser, speech_output=False)

    def policy(self):
        if self.finished_stream():
            return WriteAction("", finished=True)
        if not self.states.new_samples and not self.states.source_finished:
            return ReadAction()
        out = self._advance()
        words = complete_words(self.translator.tgt_dict, self.states.stream.target_tokens,
                               self.states.emitted_words, out.finished)
        if not words and not out.finished:
            return ReadAction()
        self.states.emitted_words += len(words)
        return WriteAction(" ".join(words), finished=out.finished)
