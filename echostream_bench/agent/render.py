"""The agent benchmark's text tables (``bench_agent.md`` and what is printed)."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from echostream_bench.agent.curve import QUALITY_METRIC
from echostream_bench.agent.long_stream import SYSTEM_ORDER, position_key
from echostream_bench.agent.timing import STAGES

__all__ = ["STAGE_LABELS", "render_long_stream", "render_curve", "render"]

STAGE_LABELS = {
    "encoder": "resampling+fbank+encoder+CTC",
    "mt": "policy+MT decoder",
    "units": "T2U + unit CTC",
    "vocoder": "vocoder",
    "other": "other",
}


def _f(x: Optional[float], fmt: str = ".1f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, fmt)


def render_long_stream(r: Dict[str, Any]) -> str:
    c, systems = r["config"], r["systems"]
    positions = c["positions_s"]
    seg = c["source_segment_size_ms"]
    names = [n for n in SYSTEM_ORDER if n in systems]
    full = [n for n in names if systems[n]["measured"] == "every chunk"]
    sampled = [n for n in names if n not in full]
    lines = [
        "## Long stream: per-chunk agent compute against stream position",
        "",
        f"Stream: {c['stream_s'] / 60:.2f} min ({c['chunks']} chunks of {seg} ms) of the {c['split']} split's "
        f"utterances in order ({c['utterances_in_stream']} with repeats), {c['silence_s']:g} s of silence between "
        "them. Per chunk: "
        f"wall time of `SimultaneousTranslator.step`, speech output on, vocoder {c['vocoder']}; torch threads "
        f"{c['threads']}.",
        "",
        f"* Every chunk timed ({', '.join(systems[n]['label'] for n in full)}): value at a position = median of the "
        f"chunks within ±{c['window_chunks']} chunks of it (±{c['window_chunks'] * seg / 1000:g} s).",
    ]
    if sampled:
        lines.append(
            f"* Sampled ({', '.join(systems[n]['label'] for n in sampled)}): too slow to run chunk by chunk to the "
            "end; at each position the prefix up to it is fed as one chunk (untimed), then "
            f"{c['timed_chunks']} normal chunks "
            f"are timed (median shown), the re-encoding systems interleaved."
        )
    if "echostream_forced" in systems:
        lines.append(
            "* Forced write: the MT decoder's end of sentence and the unit CTC's blank are banned, so the MT decoder, "
            "T2U and vocoder keep working along the whole stream (a stress setting for cost, not for quality: the "
            "tiny models are trained on single sentences and, left alone, stop writing a few seconds into a "
            "concatenated stream; see the work columns below)."
        )
    lines.append(f"* Ratios: against EchoStream's value at {positions[0]:g} s (same process).")
    lines += [
        "",
        "| position | " + " | ".join(f"{systems[n]['label']} (ms) | ×" for n in names) + " |",
        "|---|" + "---|---|" * len(names),
    ]
    for p in positions:
        cells = []
        for n in names:
            row = systems[n]["at_position"].get(position_key(p))
            cells.append(
                "n/a | n/a" if row is None else f"{row['median_ms']:.1f} | {row['ratio_to_echostream_first']:.2f}"
            )
        lines.append(f"| {p:g} s | " + " | ".join(cells) + " |")
    lines.append("")
    for name, h in r["headline"].items():
        yes = lambda ok: "yes" if ok else "NO"  # noqa: E731
        lines.append(
            f"**Headline ({systems[name]['label']}):** {h['last_ms']:.2f} ms per chunk at "
            f"{h['last_position_s']:g} s vs {h['first_ms']:.2f} ms at {h['first_position_s']:g} s: ratio "
            f"{h['ratio']:.2f}; within ±20%: {yes(h['within_20_percent'])}; at most 20% above: "
            f"{yes(h.get('at_most_20_percent_above', h['ratio'] <= 1.2))}."
        )
        lines.append("")
    lines += [
        "### Computation-aware lag",
        "",
        "Real time simulated from the per-chunk costs: chunk k arrives at (k+1)·segment, is processed from "
        "max(arrival, previous finish); lag = finish − arrival at the chunk ending at each position. "
        "Sampled systems: per-chunk cost interpolated linearly between the measured positions (held at the first "
        "measurement before it).",
        "",
        "| position | " + " | ".join(f"{systems[n]['label']} lag (s)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for p in positions:
        cells = []
        for n in names:
            row = systems[n]["at_position"].get(position_key(p))
            cells.append("n/a" if row is None else _f(row.get("lag_s"), ".3f"))
        lines.append(f"| {p:g} s | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Where the time goes",
        "",
        "Mean ms per chunk by stage (the translator's own split of each step, time_stages; other = the rest "
        "of the step's wall time: argument checks and the output), and what the measured chunks produced.",
        "",
        "| system | position | chunks | total | "
        + " | ".join(STAGE_LABELS[s] for s in (*STAGES, "other"))
        + " | subwords written | units | speech (s) |",
        "|---|---|---|---|" + "---|" * (len(STAGES) + 1) + "---|---|---|",
    ]
    for n in names:
        for p in positions:
            row = systems[n]["at_position"].get(position_key(p))
            if row is None:
                continue
            st = row["stages_mean_ms"]
            count = row["chunks"][1] - row["chunks"][0]
            lines.append(
                f"| {systems[n]['label']} | {p:g} s | {count} | {row['mean_ms']:.1f} | "
                + " | ".join(_f(st[s]) for s in (*STAGES, "other"))
                + f" | {row['subwords']} | {row['units']} | {row['speech_s']:.2f} |"
            )
    lines.append("")
    for n in full:
        s = systems[n]
        lines.append(
            f"{s['label']}: {s['subwords_total']} subwords, {s['units_total']} units, "
            f"{s['speech_total_s']:.2f} s of speech over the whole stream; last subword written in the chunk "
            f"ending at {s['last_subword_at_s']:.1f} s."
        )
    rt = r["runtime_s"]
    lines += [
        "",
        f"Runtime: {rt['echostream_full_stream']:.0f} s for the every-chunk runs, "
        f"{rt['reencode_sampled']:.0f} s for the sampled re-encoding systems, {rt['total']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def render_curve(r: Dict[str, Any]) -> str:
    c = r["config"]
    lines = [
        "## Latency-quality curve",
        "",
        "`simuleval` (SimulEval's CLI) on `agents/echostream_s2st_agent.py`, "
        f"the first {c['utterances']} utterances of "
        f"the {c['split']} split, vocoder {c['vocoder']}, torch threads {c['threads']}. Quality: "
        f"{QUALITY_METRIC} (pocketsphinx, bigram LM from {c['lm_text']}; state: {r['asr_bleu_state']}). "
        "Latency: SimulEval's speech-output metrics (ms, non-computation-aware: SimulEval 1.1.4 records no "
        "elapsed time for speech output). Text BLEU: the agent's own text translation (normalised, sacreBLEU).",
        "",
        "| system | chunk (ms) | ASR-BLEU | AL | AP | DAL | StartOffset | EndOffset | ATD | text BLEU | "
        "speech (s/utt) | run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(r["runs"], key=lambda x: (x["system"] != "echostream", x["chunk_ms"])):
        lines.append(
            f"| {r['labels'][row['system']]} | {row['chunk_ms']} | {_f(row['asr_bleu'], '.2f')} "
            f"| {_f(row['AL'], '.0f')} | "
            f"{_f(row['AP'], '.3f')} | {_f(row['DAL'], '.0f')} | {_f(row['StartOffset'], '.0f')} | "
            f"{_f(row['EndOffset'], '.0f')} | {_f(row['ATD'], '.0f')} | {_f(row.get('text_bleu'), '.2f')} | "
            f"{_f(row.get('speech_s_per_utt'), '.2f')} | {row['wall_s']:.0f} |"
        )
    ref = r.get("reference_speech")
    lines.append("")
    for row in r["runs"]:
        if row.get("error"):
            lines.append(f"* {r['labels'][row['system']]} at {row['chunk_ms']} ms: {row['error']}.")
    if ref:
        lines.append(
            f"ASR-BLEU of the reference target speech (the recogniser's ceiling on these utterances): "
            f"{ref['asr_bleu']:.2f}."
        )
    lines += ["", f"Runtime: {r['runtime_s']:.0f} s.", ""]
    return "\n".join(lines)


def render(results: Dict[str, Any]) -> str:
    parts = ["# EchoStream agent benchmark", "", f"Machine: {results.get('machine', 'unknown')}", ""]
    if isinstance(results.get("long_stream"), dict) and "systems" in results["long_stream"]:
        parts.append(render_long_stream(results["long_stream"]))
    if isinstance(results.get("curve"), dict) and "runs" in results["curve"]:
        parts.append(render_curve(results["curve"]))
    return "\n".join(parts)
