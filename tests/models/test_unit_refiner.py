"""The unit refiner: its masking for training, padding, what it leaves alone, its file; the CTC
confidences it is driven by."""

import pytest
import torch

from echostream_fairseq.cli.train_refiner import masked_examples
from echostream_fairseq.models.unit_refiner import RefinerSizes, UnitRefiner
from echostream_fairseq.modules.ctc import ctc_collapse, ctc_token_confidences


def _refiner(**sizes):
    return UnitRefiner(RefinerSizes(**{"num_units": 20, "text_dim": 12, "embed_dim": 16, "ffn_dim": 32, **sizes}), 0.0)


def test_ctc_token_confidences_are_each_new_tokens_best_frame():
    labels = [0, 5, 5, 0, 7, 7, 7, 5, 0]
    p = [0.9, 0.4, 0.6, 0.8, 0.3, 0.2, 0.5, 0.7, 0.9]
    assert ctc_collapse(labels)[0] == [5, 7, 5]
    assert ctc_token_confidences(labels, p) == [0.6, 0.5, 0.7]
    # a token carried over from the last chunk is not new, and its frames do not count
    assert ctc_collapse([5, 5, 0, 3], previous=5)[0] == [3]
    assert ctc_token_confidences([5, 5, 0, 3], [0.1, 0.2, 0.9, 0.4], previous=5) == [0.4]


def test_masked_examples_cut_prefixes_and_mask_within_them():
    g = torch.Generator().manual_seed(0)
    units = torch.arange(4, 4 + 4 * 30).view(4, 30)
    unit_lengths = torch.tensor([30, 12, 1, 25])
    text_lengths = torch.tensor([10, 4, 2, 9])
    inputs, lengths, texts, masked = masked_examples(units, unit_lengths, text_lengths, 99, g)
    assert (lengths >= 1).all() and (lengths <= unit_lengths).all()
    expected = torch.minimum(torch.ceil(lengths * text_lengths / unit_lengths) + 1, text_lengths)
    assert torch.equal(texts, expected.long())
    valid = torch.arange(30).unsqueeze(0) < lengths.unsqueeze(1)
    assert not (masked & ~valid).any() and masked.any(dim=1).all()
    assert torch.equal(inputs[masked], torch.full((int(masked.sum()),), 99))
    assert torch.equal(inputs[~masked], units[~masked])
    # seeded: the same draw again
    again = masked_examples(units, unit_lengths, text_lengths, 99, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(again, (inputs, lengths, texts, masked)))


def test_refiner_batched_with_padding_equals_each_alone():
    refiner = _refiner().eval()
    units = torch.randint(4, 20, (2, 9))
    text = torch.randn(2, 5, 12)
    lengths, text_lengths = torch.tensor([9, 6]), torch.tensor([5, 3])
    together = refiner(units, lengths, text, text_lengths)
    for b in range(2):
        n, m = int(lengths[b]), int(text_lengths[b])
        alone = refiner(units[b : b + 1, :n], lengths[b : b + 1], text[b : b + 1, :m], text_lengths[b : b + 1])
        torch.testing.assert_close(together[b, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_refine_changes_only_the_masked_units():
    refiner = _refiner().eval()
    with torch.no_grad():  # a refiner that always answers unit 11
        refiner.proj.weight.zero_()
        refiner.proj.bias.fill_(-5.0)
        refiner.proj.bias[11] = 5.0
    text = torch.randn(1, 4, 12)
    units = [4, 5, 6, 7, 8]
    assert refiner.refine(units, [False] * 5, text) == units
    assert refiner.refine(units, [False, True, False, False, True], text) == [4, 11, 6, 7, 11]
    assert refiner.refine(units, [True] * 5, text, banned=[11]) != [11] * 5
    with pytest.raises(ValueError, match="5 units but 4 mask flags"):
        refiner.refine(units, [True] * 4, text)


def test_refiner_file_round_trip_and_bad_files(tmp_path):
    refiner = _refiner(num_layers=1).eval()
    refiner.save(str(tmp_path / "r.pt"))
    loaded = UnitRefiner.load(str(tmp_path / "r.pt"))
    assert loaded.sizes == refiner.sizes and not loaded.training
    units, text = torch.randint(4, 20, (1, 6)), torch.randn(1, 3, 12)
    args = (units, torch.tensor([6]), text, torch.tensor([3]))
    torch.testing.assert_close(loaded(*args), refiner(*args))
    with pytest.raises(ValueError, match="no such file"):
        UnitRefiner.load(str(tmp_path / "missing.pt"))
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a unit refiner"):
        UnitRefiner.load(str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="not a multiple of num_heads"):
        RefinerSizes(num_units=20, text_dim=12, embed_dim=18, num_heads=4)
