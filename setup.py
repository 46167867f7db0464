"""EchoStream: a fairseq plugin with SimulEval agents for simultaneous speech-to-speech translation.

Install through the Makefile (`make test` / `make demo`): it pins the stack and installs torch and
fairseq in the order fairseq's build needs.
"""

from setuptools import find_packages, setup

setup(
    name="echostream",
    version="0.1.0",
    description="StreamSpeech's simultaneous speech translation model on bounded-state streaming encoders",
    # the product, and its benchmarks apart (echostream_bench imports echostream_fairseq, never the reverse)
    packages=find_packages(
        include=["echostream_fairseq", "echostream_fairseq.*", "echostream_bench", "echostream_bench.*"]
    ),
    package_data={"echostream_fairseq.server": ["static/*"]},
    python_requires=">=3.11,<3.12",
    install_requires=[
        "torch==2.14.1",
        "torchaudio==2.11.0",
        "fairseq-fixed==0.12.3.1",
        "simuleval==1.1.4",
        "numpy==1.26.4",
        "sentencepiece",
        "sacrebleu",
        "soundfile",
        "psutil",
        "pocketsphinx==5.1.1",
        "mweralign==1.4.1",
        "aiohttp==3.14.5",
        "prometheus-client==0.26.0",
        # simulated rooms for corpora (echostream_fairseq/data/rooms.py)
        "pyroomacoustics==0.10.1",
        # echostream-export and --runtime onnx (docs/export.md); onnx >= 1.18 needs numpy 2
        "onnx==1.17.0",
        "ml_dtypes==0.4.1",
        "onnxruntime==1.32.0",
    ],
    # FBK's simulstream serving and long-form evaluation toolkit, for its EchoStream speech processor
    # plots: the benchmarks' and learning curves' figures (make install installs matplotlib)
    extras_require={"simulstream": ["simulstream==1.0.0"], "plots": ["matplotlib"]},
    entry_points={
        "console_scripts": [
            "echostream-bench=echostream_bench.emformer_step:main",
            "echostream-prep=echostream_fairseq.cli.prep:main",
            "echostream-score=echostream_fairseq.cli.score:main",
            "echostream-bench-vocoder=echostream_bench.vocoder:main",
            "echostream-vocode=echostream_fairseq.cli.vocode:main",
            "echostream-train-vocoder=echostream_fairseq.cli.train_vocoder:main",
            "echostream-train-refiner=echostream_fairseq.cli.train_refiner:main",
            "echostream-asr-bleu=echostream_fairseq.cli.asr_bleu:main",
            "echostream-bench-agent=echostream_bench.agent:main",
            "echostream-bench-encoders=echostream_bench.encoders:main",
            "echostream-simul-report=echostream_fairseq.cli.simul_report:main",
            "echostream-learning-curves=echostream_fairseq.cli.learning_curves:main",
            "echostream-longform=echostream_fairseq.cli.longform:main",
            "echostream-bench-batch=echostream_bench.batch:main",
            "echostream-bench-system=echostream_bench.system:main",
            "echostream-bench-serving=echostream_bench.serving:main",
            "echostream-bench-moe=echostream_bench.moe:main",
            "echostream-bench-balancer=echostream_bench.balancer:main",
            "echostream-serve=echostream_fairseq.cli.serve:main",
            "echostream-client=echostream_fairseq.cli.client:main",
            "echostream-import-streamspeech=echostream_fairseq.cli.import_streamspeech:main",
            "echostream-export=echostream_fairseq.cli.export:main",
        ],
    },
)
