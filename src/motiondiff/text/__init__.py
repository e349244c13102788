"""Text conditioning: caption encoders (MiniLM, CLIP, precomputed features) and their on-disk cache."""

from motiondiff.text.cache import EmbeddingTable, cache_file, cached_table, lookup_items
from motiondiff.text.encoders import (
    CaptionItem,
    ClipEncoder,
    MiniLMEncoder,
    PrecomputedEncoder,
    TextEmbedding,
    TextEncoder,
)

__all__ = [
    "CaptionItem",
    "ClipEncoder",
    "EmbeddingTable",
    "MiniLMEncoder",
    "PrecomputedEncoder",
    "TextEmbedding",
    "TextEncoder",
    "cache_file",
    "cached_table",
    "lookup_items",
]
