"""Streaming source transcription with an EchoStream model's ASR CTC head (SimulEval agent).

    simuleval --agent agents/echostream_asr_agent.py --source-segment-size 320 \\
      --source DATA/simuleval/test.source --target DATA/simuleval/test.src_text \\
      --model-path CKPT --data-bin DATA --output OUT --quality-metrics WER

Only the encoder and the ASR CTC head run; source words are written once complete.
"""

from simuleval.agents import SpeechToTextAgent
from simuleval.agents.actions import ReadAction, WriteAction
from simuleval.utils import entrypoint

from echostream_fairseq.streaming.simuleval_agent import EchoStreamAgentMixin, add_agent_args, complete_words


@entrypoint
class EchoStreamASRAgent(EchoStreamAgentMixin, SpeechToTextAgent):
    output = "asr"

    @staticmethod
    def add_args(parser):
        add_agent_args(parser, speech_output=False)

    def policy(self):
        if self.finished_stream():
            return WriteAction("", finished=True)
        if not self.states.new_samples and not self.states.source_finished:
            return ReadAction()
        out = self._advance()
        words = complete_words(self.translator.src_dict, self.states.stream.asr_tokens,
                               self.states.emitted_words, out.finished)
        if not words and not out.finished:
            return ReadAction()
        self.states.emitted_words += len(words)
        return WriteAction(" ".join(words), finished=out.finished)
