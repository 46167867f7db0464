"""Words of subword text: where a growing piece sequence ends with a complete word."""

from echostream_fairseq.data.text import whole_word_prefix


def test_whole_word_prefix_cuts_before_the_last_word_start():
    starts = {10: True, 11: False, 12: True, 13: False, 14: True}.get
    # tokens: _a b _c d _e -> keep "_a b _c d" (the "_e" word may still continue)
    assert whole_word_prefix([10, 11, 12, 13, 14], 0, starts) == 4
    # no complete word among the new tokens -> keep only what was committed
    assert whole_word_prefix([10, 11, 12, 13], 2, starts) == 2
    assert whole_word_prefix([10, 11], 0, starts) == 0
    # committed tokens are never taken back
    assert whole_word_prefix([10, 11, 12, 13, 14], 5, starts) == 5
