"""``echostream-prep``: build a training-ready EchoStream corpus folder.

Three sources::

    echostream-prep synthetic --out DIR [--num-train 1000 --num-dev 100 --num-test 100 --seed 1]
    echostream-prep cvss --cv-root CV_FR --cvss-root CVSS_C_FR_EN --out DIR [--splits train dev test]
    echostream-prep tsv --train train.tsv [--dev dev.tsv] [--test test.tsv] --out DIR

and, from a synthetic corpus, long-form test streams of new sentences::

    echostream-prep longform --corpus DIR --out STREAMS [--minutes 1 5 10]

and training examples of several sentences in a row, added to a prepared corpus::

    echostream-prep concat --corpus DIR [--split train_concat --count 5000 --max-sentences 3]

Every run is resumable: finished steps are skipped, outputs made with other options are kept
unless ``--force``. Bad input ends with ``error: <file>:<line>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from typing import List, Optional

__all__ = ["build_parser", "main"]

# per source: (default --vocab-size, default --num-units)
DEFAULTS = {"synthetic": (300, 200), "cvss": (6000, 1000), "tsv": (6000, 1000)}


def _common_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--out", required=True, help="output folder (created; reruns resume it)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace outputs made with other options, or write into a non-empty folder prep did not make",
    )
    p.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help="sentencepiece vocabulary size per language (default: 300 synthetic, 6000 otherwise; "
        "a small corpus may end up with fewer pieces)",
    )
    p.add_argument(
        "--num-units",
        type=int,
        default=None,
        help="number of target units K of the log-mel k-means (default: 200 synthetic, 1000 otherwise)",
    )
    p.add_argument(
        "--unit-extractor",
        choices=("logmel", "hubert"),
        default="logmel",
        help="logmel: k-means on 80-bin log-mel of the target speech (20 ms hop); hubert: a HuBERT "
        "checkpoint's layer features with a given k-means model",
    )
    p.add_argument("--hubert-checkpoint", help="fairseq HuBERT checkpoint (with --unit-extractor hubert)")
    p.add_argument(
        "--hubert-layer", type=int, default=11, help="HuBERT transformer layer to read (1-based, default 11)"
    )
    p.add_argument(
        "--kmeans-model",
        help="k-means for HuBERT features: .npy/.pt centroids [K, D] or an sklearn "
        "KMeans saved with joblib/pickle (trusted files only)",
    )
    p.add_argument(
        "--kmeans-max-frames",
        type=int,
        default=300_000,
        help="train target frames the log-mel k-means is fitted on (default 300000)",
    )
    p.add_argument("--kmeans-iterations", type=int, default=50, help="maximum k-means iterations (default 50)")
    p.add_argument(
        "--cmvn-max-utterances",
        type=int,
        default=10_000,
        help="train utterances the global CMVN is estimated on (default 10000)",
    )
    p.add_argument("--jobs", type=int, default=2, help="threads decoding and resampling input audio (default 2)")
    p.add_argument(
        "--precompute-fbank",
        action="store_true",
        help="write each source utterance's 80-dim fbank once to features/{id}.npy and point the "
        "manifests at them, so training spends no time on features (the wavs stay for the agents)",
    )
    p.add_argument(
        "--no-specaugment",
        dest="specaugment",
        action="store_false",
        help="leave SpecAugment out of the training transforms in config.yaml (kept in its "
        "specaugment section, so a config can turn it back on)",
    )
    p.add_argument(
        "--rooms",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="put this share (0 to 1) of the training utterances' source speech in simulated rooms with "
        "noise, drawn per utterance (docs/data.md; default 0: none)",
    )
    p.add_argument(
        "--test-room",
        action="store_true",
        help="also write the test_room split: the test sentences in rooms and noise beyond anything training draws",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="print errors and the final summary only")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="echostream-prep",
        description="Prepare a French->English speech-to-unit corpus for EchoStream (fairseq speech-to-speech layout).",
    )
    sub = parser.add_subparsers(
        dest="source", required=True, metavar="{synthetic,cvss,tsv,longform,concat,convert-kmeans}"
    )

    p = sub.add_parser(
        "synthetic",
        parents=[common],
        help="offline espeak-ng corpus from a built-in grammar",
        description="French->English parallel speech synthesised with espeak-ng from a built-in grammar.",
    )
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--num-dev", type=int, default=100)
    p.add_argument("--num-test", type=int, default=100)
    p.add_argument("--seed", type=int, default=1, help="fixes sentences, voices, k-means and subsets (default 1)")
    p.add_argument(
        "--held-out-voices",
        nargs="*",
        default=None,
        metavar="VARIANT",
        help="source voice variants kept out of train, dev and test; the split test_heldout repeats the "
        "test sentences in these voices only (default: es-crisp es-breathy; the flag alone: none)",
    )
    p.add_argument(
        "--extra-voices",
        type=int,
        default=0,
        metavar="N",
        help="add N generated voices (es-gen01 ..; other vocal tract lengths and pitch bands) to the "
        "voices of train, dev and test (default 0; at most 32)",
    )
    p.add_argument(
        "--extra-voice-qualities",
        action="store_true",
        help="the generated voices also vary consonant strength, breath and echo (es-gq01 ..)",
    )

    p = sub.add_parser(
        "cvss",
        parents=[common],
        help="Common Voice French + CVSS-C fr-en",
        description="Common Voice French (clips/*.mp3, {train,dev,test}.tsv) joined with CVSS-C fr-en "
        "({split}.tsv: clip, translation; {split}/{clip}.wav).",
    )
    p.add_argument(
        "--cv-root", required=True, help="Common Voice French folder (clips/, train.tsv, dev.tsv, test.tsv, ...)"
    )
    p.add_argument("--cvss-root", required=True, help="CVSS-C fr-en folder (train.tsv, train/, dev.tsv, dev/, ...)")
    p.add_argument("--splits", nargs="+", default=["train", "dev", "test"], choices=("train", "dev", "test"))
    p.add_argument("--seed", type=int, default=1, help="seeds k-means and subsets (default 1)")

    p = sub.add_parser(
        "tsv",
        parents=[common],
        help="generic TSV per split",
        description="One TSV per split with header id, src_audio, src_text, tgt_text, tgt_audio "
        "(audio paths absolute or relative to the TSV's folder).",
    )
    p.add_argument("--train", required=True)
    p.add_argument("--dev")
    p.add_argument("--test")
    p.add_argument("--seed", type=int, default=1, help="seeds k-means and subsets (default 1)")

    p = sub.add_parser(
        "longform",
        help="long-form test streams of new sentences from a synthetic corpus",
        description="One wav per stream of sentences the corpus does not hold, separated by pauses, "
        "the voice changing now and then, with each sentence's start and end time.",
    )
    p.add_argument("--corpus", required=True, help="a folder made by echostream-prep synthetic")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0, 10.0], help="one stream per length")
    p.add_argument(
        "--pause-range",
        type=float,
        nargs=2,
        default=[0.2, 1.5],
        metavar=("LOW", "HIGH"),
        help="seconds of silence between sentences, drawn uniformly (default 0.2 1.5)",
    )
    p.add_argument(
        "--voice-every",
        type=int,
        nargs=2,
        default=[3, 8],
        metavar=("LOW", "HIGH"),
        help="sentences between voice changes, drawn uniformly (default 3 8)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="print errors and the final summary only")

    p = sub.add_parser(
        "concat",
        help="add a split of 2-3 train utterances joined with pauses",
        description="Training examples of several sentences in a row: train utterances joined with "
        "pauses, their targets one after the other (features, manifest, subwords, units).",
    )
    p.add_argument("--corpus", required=True, help="a prepared corpus folder (written into)")
    p.add_argument("--split", default="train_concat")
    p.add_argument("--count", type=int, default=5000, help="examples to make (default 5000)")
    p.add_argument("--max-sentences", type=int, default=3, help="utterances per example, at most (at least 2)")
    p.add_argument("--pause-range", type=float, nargs=2, default=[0.2, 1.5], metavar=("LOW", "HIGH"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="print errors and the final summary only")

    p = sub.add_parser(
        "convert-kmeans",
        help="a pickled sklearn k-means (fairseq's, StreamSpeech's) to a .npy of its centroids",
        description="Unpickle an sklearn k-means model (it runs code from the file: only for files you "
        "trust) and write its centroids as .npy, which --kmeans-model then reads without unpickling.",
    )
    p.add_argument("--kmeans-model", required=True, help="the pickled k-means (e.g. mhubert.km1000.layer11.pt)")
    p.add_argument("--out", required=True, help="the .npy to write")
    p.add_argument("--quiet", action="store_true", help="print errors only")
    return parser


def _concat(args: argparse.Namespace) -> None:
    from echostream_fairseq.data.concat import ConcatOptions, build_concat_split

    options = ConcatOptions(
        args.corpus, args.split, args.count, args.max_sentences, tuple(args.pause_range), seed=args.seed
    )
    count = build_concat_split(options, progress=not (args.no_progress or args.quiet))
    print(
        f"{args.corpus}/{args.split}.tsv: {count} examples of 2-{args.max_sentences} sentences; "
        f"{args.split}_mix.tsv: train and them"
    )


def _longform(args: argparse.Namespace) -> None:
    from echostream_fairseq.data.longform import LongFormOptions, build_longform

    options = LongFormOptions(
        args.corpus, args.out, tuple(args.minutes), tuple(args.pause_range), tuple(args.voice_every), args.seed
    )
    tables = build_longform(options, progress=not (args.no_progress or args.quiet))
    for name, table in tables.items():
        print(f"{name}: {len(table)} sentences, speech ends at {table[-1].end:.1f} s")


def _load_corpus(args: argparse.Namespace):
    from echostream_fairseq.data.corpus import DEFAULT_HELD_OUT_VOICES, cvss_corpus, synthetic_corpus, tsv_corpus

    if args.source == "synthetic":
        return synthetic_corpus(
            args.seed,
            {"train": args.num_train, "dev": args.num_dev, "test": args.num_test},
            held_out_voices=DEFAULT_HELD_OUT_VOICES if args.held_out_voices is None else args.held_out_voices,
            extra_voices=args.extra_voices,
            extra_voice_qualities=args.extra_voice_qualities,
        )
    if args.source == "cvss":
        return cvss_corpus(args.cv_root, args.cvss_root, list(dict.fromkeys(args.splits)))
    return tsv_corpus(
        {split: path for split, path in (("train", args.train), ("dev", args.dev), ("test", args.test)) if path}
    )


def _print_summary(result: dict, out: str, seconds: float) -> None:
    stats = result["stats"]
    print(
        f"echostream-prep: {out} ready in {seconds:.1f} s "
        f"(ran: {', '.join(result['ran']) or 'nothing'}; up to date: {', '.join(result['skipped']) or 'nothing'})"
    )
    print(f"{'split':<6} {'utts':>6} {'src s':>6} {'tgt s':>6} {'units':>6} {'src sw':>6} {'tgt sw':>6}")
    for split, s in stats["splits"].items():
        print(
            f"{split:<6} {s['utterances']:>6} {s['src_seconds_mean']:>6.2f} {s['tgt_seconds_mean']:>6.2f} "
            f"{s['tgt_units_mean']:>6.1f} {s['src_subwords_mean']:>6.1f} {s['tgt_subwords_mean']:>6.1f}"
        )
    print(
        f"units: K={stats['num_units']} ({stats['units_used_in_train']} used in train); subword vocabularies: "
        f"src {stats['src_subword_vocabulary']}, tgt {stats['tgt_subword_vocabulary']}; "
        f"train words: src {stats['train_vocabulary_words']['src']}, tgt {stats['train_vocabulary_words']['tgt']}"
    )


def _configure_logging(quiet: bool) -> None:
    logger = logging.getLogger("echostream.prep")
    if not any(getattr(h, "_echostream_prep", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._echostream_prep = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    # fairseq (imported with the package) announces optional extras at INFO; not news for prep users
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    _configure_logging(args.quiet)
    # imported here so that --help answers at once
    from echostream_fairseq.data.audio import AudioError
    from echostream_fairseq.data.manifest import ManifestError
    from echostream_fairseq.data.prep import prepare
    from echostream_fairseq.data.prep_options import PrepOptions
    from echostream_fairseq.data.steps import PrepError
    from echostream_fairseq.data.tts import TtsError
    from echostream_fairseq.data.units import UnitError

    if args.source == "convert-kmeans":
        from echostream_fairseq.data.units import convert_pickled_kmeans

        print(f"unpickling {args.kmeans_model} (this runs code from the file)", file=sys.stderr)
        try:
            centroids = convert_pickled_kmeans(args.kmeans_model, args.out)
        except UnitError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        print(f"{args.out}: {centroids.shape[0]} centroids of {centroids.shape[1]} dimensions")
        return
    if args.source in ("longform", "concat"):
        try:
            (_longform if args.source == "longform" else _concat)(args)
        except (AudioError, ManifestError, PrepError, TtsError) as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    vocab_default, units_default = DEFAULTS[args.source]
    hubert = args.unit_extractor == "hubert"
    options = PrepOptions(
        out_dir=args.out,
        vocab_size=args.vocab_size if args.vocab_size is not None else vocab_default,
        num_units=args.num_units if args.num_units is not None or hubert else units_default,
        unit_extractor=args.unit_extractor,
        hubert_checkpoint=args.hubert_checkpoint,
        hubert_layer=args.hubert_layer,
        kmeans_model=args.kmeans_model,
        kmeans_max_frames=args.kmeans_max_frames,
        kmeans_iterations=args.kmeans_iterations,
        cmvn_max_utterances=args.cmvn_max_utterances,
        precompute_fbank=args.precompute_fbank,
        specaugment=args.specaugment,
        rooms=args.rooms,
        test_room=args.test_room,
        seed=args.seed,
        jobs=args.jobs,
        force=args.force,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    t0 = time.perf_counter()
    try:
        corpus = _load_corpus(args)
        result = prepare(corpus, options)
    except (AudioError, ManifestError, PrepError, UnitError, TtsError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    _print_summary(result, args.out, time.perf_counter() - t0)
    if not args.quiet:
        print(json.dumps({"seconds": {k: round(v, 2) for k, v in result["seconds"].items()}}), file=sys.stderr)


if __name__ == "__main__":
    main()
