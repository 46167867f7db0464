"""fairseq's stored configuration classes, allow-listed for ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, and fairseq's ``load_checkpoint_to_cpu``
relies on that default. fairseq checkpoints hold their training configuration as an
``argparse.Namespace`` and omegaconf containers, which the safe unpickler rejects. We allow-list
exactly those configuration classes (plain data holders) instead of switching the safety off.
The task calls :func:`allow_fairseq_checkpoint_configs` when fairseq sets it up, and
:mod:`~echostream_fairseq.checkpoint` before it loads a checkpoint.
"""

from __future__ import annotations

import argparse
import collections
import typing

import torch

__all__ = ["CHECKPOINT_CONFIG_CLASSES", "allow_fairseq_checkpoint_configs"]


def _config_classes() -> list:
    from omegaconf import DictConfig, ListConfig, nodes
    from omegaconf.base import ContainerMetadata, Metadata

    node_types = [
        getattr(nodes, name)
        for name in (
            "AnyNode",
            "StringNode",
            "IntegerNode",
            "FloatNode",
            "BooleanNode",
            "EnumNode",
            "BytesNode",
            "PathNode",
        )
        if hasattr(nodes, name)
    ]
    return [
        argparse.Namespace,
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        typing.Any,
        dict,
        list,
        int,
        collections.defaultdict,
        *node_types,
    ]


CHECKPOINT_CONFIG_CLASSES = _config_classes()


def allow_fairseq_checkpoint_configs() -> None:
    """Allow-list fairseq's stored configuration classes for ``weights_only`` loading (idempotent)."""
    torch.serialization.add_safe_globals(CHECKPOINT_CONFIG_CLASSES)
