"""Datasets: class lists, splits, image-level labels, optional pixel masks, and OoD sets."""

from woodseg.data.dataset import LabelledImageSet, OodSet
from woodseg.data.images import load_image, load_mask

__all__ = ["LabelledImageSet", "OodSet", "load_image", "load_mask"]
