"""Synthetic grocery shelves: photos with masks and instances; shelf videos with per-frame masks."""

from prodseg.data.synth.dataset import generate_dataset, parse_size
from prodseg.data.synth.video import generate_video

__all__ = ["generate_dataset", "generate_video", "parse_size"]
