"""Localization-map seeds: multi-scale CAM and the per-image seed file format."""
