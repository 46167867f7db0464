"""The CTC READ/WRITE policy driven by scripted CTC prefix lengths: exact action sequences."""

import pytest

from echostream_fairseq.streaming.policy import FINISH, PolicyConfig, PolicyState, ctc_policy, whole_word_default


def _drive(config, script, finish_at_end=True):
    """script: (asr_length, st_length) per chunk; the MT decoder writes exactly what is asked."""
    state, written, actions = PolicyState(), 0, []
    for i, (asr, st) in enumerate(script):
        last = finish_at_end and i == len(script) - 1
        target, state = ctc_policy(config, state, asr, st, written, last)
        if target is None:
            actions.append("R")
        elif target == FINISH:
            actions.append("F")
        else:
            actions.append(f"W{target - written}")
            written = target
    return "".join(actions), written


SCRIPT = [(0, 0), (1, 0), (2, 1), (2, 1), (3, 2), (5, 2), (6, 4), (7, 4), (8, 6), (9, 6)]


def test_stride_1_writes_as_both_prefixes_grow():

    actions, written = _drive(PolicyConfig(), SCRIPT)
    # chunk 3: asr 0->2, st 0->1 -> write 1; chunk 5: both grew -> write 1 more (st=2);
    # chunk 6: asr grew but st did not -> READ; chunk 7: st 2->4 -> write 2; chunk 9 likewise
    assert actions == "RRW1RW1RW2RW2F"
    assert written == 6


def test_stride_2_waits_for_two_new_tokens_on_both_sides():
    actions, written = _drive(PolicyConfig(stride_n=2), SCRIPT)
    # the reference point moves only on a write: (0,0) -> (3,2) -> (6,4) -> (8,6)
    assert actions == "RRRRW2RW2RW2F"
    assert written == 6


def test_lag_k1_holds_back_target_tokens():
    actions, written = _drive(PolicyConfig(lagging_k1=1), SCRIPT)
    # st=1 gives 0 tokens (READ; the reference still moves), st=2 -> 1, st=4 -> 3, st=6 -> 5
    assert actions == "RRRRW1RW2RW2F"
    assert written == 5


def test_whole_word_asks_for_one_extra_token():
    target, state = ctc_policy(PolicyConfig(whole_word=True), PolicyState(), 3, 2, 0, False)
    assert target == 3 and state == PolicyState(3, 2)


def test_finish_whatever_the_prefixes():
    target, state = ctc_policy(PolicyConfig(), PolicyState(5, 5), 0, 0, 3, True)
    assert target == FINISH and state == PolicyState(5, 5)


def test_whole_word_default_and_bad_config():
    assert whole_word_default(640) and not whole_word_default(320)
    with pytest.raises(ValueError, match="stride_n must be >= 1"):
        PolicyConfig(stride_n=0)
    with pytest.raises(ValueError, match="lagging_k1 must be >= 0"):
        PolicyConfig(lagging_k1=-1)


def test_repeated_ngram_ends_are_the_tokens_that_would_repeat_an_ngram():
    from echostream_fairseq.streaming.policy import repeated_ngram_ends

    written = [5, 6, 7, 5, 6]
    assert repeated_ngram_ends(written, 3) == [7]  # "5 6 7" again
    assert repeated_ngram_ends(written, 2) == [7]  # "6 7" would repeat after the last 6
    assert repeated_ngram_ends(written, 1) == [5, 6, 7]
    assert repeated_ngram_ends(written, 4) == []
    assert repeated_ngram_ends(written, 0) == [] and repeated_ngram_ends([], 3) == []
    assert repeated_ngram_ends([9, 9], 2) == [9]
