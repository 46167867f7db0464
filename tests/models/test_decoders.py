"""The decoders downstream of the encoder: incremental equals full, causality, shapes."""

import pytest
import torch
from fairseq.data import Dictionary

from echostream_fairseq.models.ctc_heads import TransformerCTCHead
from echostream_fairseq.models.mt_decoder import MTDecoder
from echostream_fairseq.models.unit_decoder import CTCUnitDecoder, T2UEncoder
from echostream_fairseq.modules.transformer_layer import TransformerLayer


def _dictionary(n=12):
    d = Dictionary()
    for i in range(n):
        d.add_symbol(f"\u2581w{i}")
    return d


def _encoder_out(x, padding=None):
    B, T, _ = x.shape
    padding = torch.zeros(B, T, dtype=torch.bool) if padding is None else padding
    return {"encoder_out": [x.transpose(0, 1)], "encoder_padding_mask": [padding]}


def test_mt_decoder_incremental_equals_full():
    torch.manual_seed(0)
    d = _dictionary()
    dec = MTDecoder(d, encoder_dim=16, embed_dim=32, ffn_dim=64, num_layers=2, num_heads=4).eval()
    enc = _encoder_out(torch.randn(2, 7, 16))
    prev = torch.randint(4, len(d), (2, 6))
    prev[:, 0] = d.eos()
    full, extra = dec(prev, enc)
    state = {}
    steps = [dec(prev[:, : t + 1], enc, incremental_state=state)[0] for t in range(prev.size(1))]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert extra["hidden"].shape == (2, 6, 32)


def test_mt_decoder_reorder_incremental_state_follows_the_beam():
    torch.manual_seed(1)
    d = _dictionary()
    dec = MTDecoder(d, encoder_dim=8, embed_dim=16, ffn_dim=32, num_layers=1, num_heads=2).eval()
    enc = _encoder_out(torch.randn(2, 5, 8))
    prev = torch.randint(4, len(d), (2, 3))
    state = {}
    for t in range(2):
        dec(prev[:, : t + 1], enc, incremental_state=state)
    order = torch.tensor([1, 0])
    dec.reorder_incremental_state(state, order)
    swapped_enc = {k: [v[0].index_select(1 if k == "encoder_out" else 0, order)] for k, v in enc.items()}
    out = dec(prev[order], swapped_enc, incremental_state=state)[0]
    full = dec(prev[order], swapped_enc)[0][:, -1:]
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)


def test_mt_decoder_cross_attention_mask_hides_the_future_source():
    torch.manual_seed(2)
    d = _dictionary()
    dec = MTDecoder(d, encoder_dim=8, embed_dim=16, ffn_dim=32, num_layers=2, num_heads=2).eval()
    x = torch.randn(1, 6, 8)
    prev = torch.tensor([[d.eos(), 5, 6]])
    mask = torch.zeros(1, 3, 6, dtype=torch.bool)
    mask[0, 0, :2], mask[0, 1, :4], mask[0, 2, :] = True, True, True
    a = dec(prev, _encoder_out(x), cross_attention_mask=mask)[0]
    y = x.clone()
    y[:, 4:] = torch.randn(1, 2, 8)  # frames only token 2 may see
    b = dec(prev, _encoder_out(y), cross_attention_mask=mask)[0]
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_cross_attention_cache_projects_only_new_memory_frames():
    torch.manual_seed(3)
    layer = TransformerLayer(16, 2, 32, dropout=0.0, memory_dim=8).eval()
    memory = torch.randn(1, 9, 8)
    x = torch.randn(1, 1, 16)
    _, cache = layer(x, memory=memory[:, :5])
    assert cache.cross_key.size(2) == 5
    out_grown, cache2 = layer(
        x, memory=memory, cache=type(cache)(cross_key=cache.cross_key, cross_value=cache.cross_value)
    )
    assert cache2.cross_key.size(2) == 9
    out_fresh, _ = layer(x, memory=memory)
    torch.testing.assert_close(out_grown, out_fresh, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("left_context", [0, 3])
def test_st_ctc_head_streaming_equals_full(left_context):
    torch.manual_seed(4)
    head = TransformerCTCHead(16, 10, num_layers=2, num_heads=2, ffn_dim=32, left_context=left_context).eval()
    x = torch.randn(2, 11, 16)
    full = head(x)
    caches, outs = None, []
    for a, b in [(0, 4), (4, 5), (5, 11)]:
        y, caches = head.step(x[:, a:b], caches)
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)
    if left_context:
        assert caches[0].self_key.size(2) == left_context  # bounded state


def test_unit_decoder_earlier_units_do_not_change_when_text_grows():
    """Causal T2U + wait-k (k2=0, n2=1): appending text leaves the units of earlier text unchanged."""
    torch.manual_seed(5)
    t2u = T2UEncoder(16, 16, 32, num_layers=1, num_heads=2).eval()
    dec = CTCUnitDecoder(16, num_units=9, upsample_rate=3, ffn_dim=32, num_layers=2, num_heads=2).eval()
    text = torch.randn(1, 5, 16)
    short, short_len = dec(t2u(text[:, :3]), torch.tensor([3]), k2=0, n2=1)
    long, long_len = dec(t2u(text), torch.tensor([5]), k2=0, n2=1)
    assert short.shape == (1, 9, 9) and long.shape == (1, 15, 9)
    assert short_len.tolist() == [9] and long_len.tolist() == [15]
    torch.testing.assert_close(long[:, :9], short, atol=1e-5, rtol=1e-5)
    # offline (n2=None) lets early positions see later text
    offline, _ = dec(t2u(text), torch.tensor([5]))
    assert not torch.allclose(offline[:, :9], short, atol=1e-4)


def test_unit_decoder_rejects_bad_upsample_rate():
    with pytest.raises(ValueError, match="upsample_rate"):
        CTCUnitDecoder(16, 9, upsample_rate=0, ffn_dim=32, num_layers=1, num_heads=2)


def test_mt_decoder_step_equals_the_full_forward():
    torch.manual_seed(3)
    d = _dictionary()
    dec = MTDecoder(d, encoder_dim=16, embed_dim=32, ffn_dim=64, num_layers=2, num_heads=4).eval()
    memory = torch.randn(1, 23, 16)
    tokens = [d.eos(), 7, 12, 9, 5, 8]
    with torch.no_grad():
        hidden_ref, _ = dec(torch.tensor([tokens]), _encoder_out(memory), features_only=True)
        logits_ref = dec.output_layer(hidden_ref)
        no_tokens = torch.zeros(1, 0, dtype=torch.long)
        _, _, caches = dec.step(no_tokens, None, 0, new_memory=memory[:, :10])
        _, _, caches = dec.step(no_tokens, caches, 0, new_memory=memory[:, 10:])  # memory in two chunks
        logits, hidden, caches = dec.step(torch.tensor([tokens[:2]]), caches, 0)  # two inputs at once
        rows, outs = [hidden], [logits]
        for position in range(2, len(tokens)):
            logits, hidden, caches = dec.step(torch.tensor([[tokens[position]]]), caches, position)
            rows.append(hidden)
            outs.append(logits)
    torch.testing.assert_close(torch.cat(rows, dim=1), hidden_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(outs, dim=1), logits_ref, atol=1e-5, rtol=1e-5)
    assert caches[0].self_key.size(2) == len(tokens) and caches[0].cross_key.size(2) == 23


def test_mt_decoder_step_windows_bound_its_caches():
    torch.manual_seed(4)
    d = _dictionary()
    dec = MTDecoder(d, encoder_dim=8, embed_dim=16, ffn_dim=32, num_layers=1, num_heads=2).eval()
    caches = None
    with torch.no_grad():
        for position in range(12):
            _, _, caches = dec.step(
                torch.tensor([[5]]), caches, position, new_memory=torch.randn(1, 3, 8), memory_window=7, self_window=4
            )
    assert caches[0].self_key.size(2) == 4 and caches[0].cross_key.size(2) == 7


def test_mt_memory_extended_for_several_streams_equals_each_alone():
    """New encoder frames of three streams (one with an empty memory, one whose window fills)
    projected together give each stream's own caches."""
    torch.manual_seed(6)
    dec = MTDecoder(_dictionary(), encoder_dim=8, embed_dim=16, ffn_dim=32, num_layers=2, num_heads=2).eval()
    with torch.no_grad():
        _, _, some = dec.step(torch.tensor([[2]]), None, 0, new_memory=torch.randn(1, 4, 8), memory_window=6)
        _, _, full = dec.step(torch.tensor([[2]]), None, 0, new_memory=torch.randn(1, 6, 8), memory_window=6)
        caches = [None, some, full]
        frames = [torch.randn(1, 3, 8), torch.randn(1, 1, 8), torch.randn(1, 2, 8)]
        together = dec.extend_memory(caches, frames, memory_window=6)
        for cache, new, got in zip(caches, frames, together):
            _, _, alone = dec.step(torch.zeros(1, 0, dtype=torch.long), cache, 0, new_memory=new, memory_window=6)
            for a, b in zip(got, alone):
                torch.testing.assert_close(a.cross_key, b.cross_key, atol=1e-6, rtol=1e-6)
                torch.testing.assert_close(a.cross_value, b.cross_value, atol=1e-6, rtol=1e-6)
                assert (a.self_key is None) == (b.self_key is None)
    assert [c[0].cross_key.size(2) for c in together] == [3, 5, 6]


def test_mt_decoder_positions_are_fairseqs():
    from fairseq.modules import SinusoidalPositionalEmbedding

    from echostream_fairseq.modules.positions import sinusoidal_rows, token_positions

    table = SinusoidalPositionalEmbedding.get_embedding(300, 32, padding_idx=1)
    pos = torch.tensor([2, 3, 50, 200, 299])
    torch.testing.assert_close(sinusoid := sinusoidal_rows(pos, 32), table[pos], atol=1e-5, rtol=0)
    assert sinusoid.shape == (5, 32)
    tokens = torch.tensor([[2, 7, 9, 1, 1], [2, 5, 6, 8, 4]])  # pad = 1, right-padded
    rows = token_positions(tokens, 1, 32)
    torch.testing.assert_close(rows[0, :3], table[2:5], atol=1e-5, rtol=0)
    assert rows[0, 3:].abs().max() == 0  # padding gets a zero row
    torch.testing.assert_close(rows[1], table[2:7], atol=1e-5, rtol=0)


def test_text_to_units_steps_equal_the_full_forward():
    torch.manual_seed(5)
    t2u = T2UEncoder(input_dim=16, embed_dim=24, ffn_dim=48, num_layers=2, num_heads=4).eval()
    dec = CTCUnitDecoder(embed_dim=24, num_units=10, upsample_rate=3, ffn_dim=48, num_layers=2, num_heads=4).eval()
    text = torch.randn(1, 7, 16)
    with torch.no_grad():
        full_text = t2u(text)
        full_logits, _ = dec(full_text, torch.tensor([7]), k2=0, n2=1)
        t2u_caches = unit_caches = None
        outs, logits = [], []
        for a, b in [(0, 2), (2, 3), (3, 7)]:  # text arriving in pieces
            out, t2u_caches = t2u.step(text[:, a:b], t2u_caches)
            piece, unit_caches = dec.step(out, unit_caches, a)
            outs.append(out)
            logits.append(piece)
    torch.testing.assert_close(torch.cat(outs, dim=1), full_text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(logits, dim=1), full_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lookahead", [1, 2])
def test_unit_steps_with_lookahead_equal_the_wait_k_forward(lookahead):
    """Units held back until ``lookahead`` more text states arrived equal the full forward under
    the wait-k mask ``k2 = lookahead``; at the end the held-back states are flushed."""
    torch.manual_seed(6)
    dec = CTCUnitDecoder(embed_dim=24, num_units=10, upsample_rate=3, ffn_dim=48, num_layers=2, num_heads=4).eval()
    text = torch.randn(1, 7, 24)
    with torch.no_grad():
        full_logits, _ = dec(text, torch.tensor([7]), k2=lookahead, n2=1)
        assert not torch.allclose(full_logits, dec(text, torch.tensor([7]), k2=0, n2=1)[0], atol=1e-3)
        caches, done, logits = None, 0, []
        for a, b in [(0, 1), (1, 4), (4, 5), (5, 7)]:  # text arriving in pieces
            ready = b if b == 7 else max(done, b - lookahead)  # all of it once the text is complete
            piece, caches = dec.step(
                text[:, done:ready], caches, done, lookahead=lookahead, new_memory=text[:, a:b], memory_end=b
            )
            assert piece.size(1) == (ready - done) * 3
            logits.append(piece)
            done = ready
    torch.testing.assert_close(torch.cat(logits, dim=1), full_logits, atol=1e-5, rtol=1e-5)


def test_held_states_flushed_without_new_text_equal_the_wait_k_forward():
    """The end of the text arriving with no new state: the held-back states are flushed with an
    empty ``new_memory`` (they are in the memory already) and give the full forward's units."""
    torch.manual_seed(7)
    dec = CTCUnitDecoder(embed_dim=24, num_units=10, upsample_rate=3, ffn_dim=48, num_layers=2, num_heads=4).eval()
    text = torch.randn(1, 7, 24)
    with torch.no_grad():
        full_logits, _ = dec(text, torch.tensor([7]), k2=1, n2=1)
        caches, done, logits = None, 0, []
        for a, b in [(0, 1), (1, 4), (4, 7), (7, 7)]:  # the last call: the end of the text, nothing new
            ready = 7 if a == b else max(done, b - 1)
            if a == b:  # the held state given as new memory again would be attended twice
                twice, _ = dec.step(text[:, done:ready], caches, done, lookahead=1, memory_end=b)
            piece, caches = dec.step(
                text[:, done:ready], caches, done, lookahead=1, new_memory=text[:, a:b], memory_end=b
            )
            logits.append(piece)
            done = ready
    torch.testing.assert_close(torch.cat(logits, dim=1), full_logits, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(twice, full_logits[:, -3:], atol=1e-3)


def test_packed_steps_of_several_streams_equal_each_stream_alone():
    """T2U and the unit decoder stepped for three streams at once (caches of different lengths, one
    stream with no new text, windows full for another) give each stream's own states, logits and
    caches."""
    torch.manual_seed(8)
    t2u = T2UEncoder(input_dim=20, embed_dim=24, ffn_dim=48, num_layers=2, num_heads=4).eval()
    dec = CTCUnitDecoder(embed_dim=24, num_units=10, upsample_rate=3, ffn_dim=48, num_layers=2, num_heads=4).eval()
    window, lookahead = 4, 1
    with torch.no_grad():
        streams = []
        for before in (2, 6, 3):  # text states each stream has had
            text = t2u.step(torch.randn(1, before, 20), None, window)
            states, t2u_caches = text
            _, unit_caches = dec.step(
                states[:, : before - lookahead], None, 0, window, lookahead, new_memory=states, memory_end=before
            )
            streams.append((t2u_caches, unit_caches, before))
        news = [torch.randn(1, 2, 20), torch.randn(1, 3, 20), torch.zeros(1, 0, 20)]
        packed_out, packed_t2u = t2u.step_packed(news, [s[0] for s in streams], window)
        steps = []
        for (t2u_caches, unit_caches, before), new, out in zip(streams, news, packed_out):
            alone, alone_caches = t2u.step(new, t2u_caches, window)
            torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)
            ready = out[:, : max(out.size(1) - lookahead, 0)]
            steps.append((ready, unit_caches, before - lookahead, out, before + out.size(1)))
        logits, caches = dec.step_packed(steps, window, lookahead)
        assert [piece.size(1) for piece in logits] == [3, 6, 0]
        for (ready, unit_caches, position, memory, end), piece, cache in zip(steps, logits, caches):
            alone, alone_caches = dec.step(
                ready, unit_caches, position, window, lookahead, new_memory=memory, memory_end=end
            )
            torch.testing.assert_close(piece, alone, atol=1e-5, rtol=1e-5)
            for a, b in zip(cache, alone_caches):
                for x, y in ((a.self_key, b.self_key), (a.self_value, b.self_value), (a.cross_key, b.cross_key)):
                    torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
