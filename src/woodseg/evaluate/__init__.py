"""Confusion matrices, mIoU / precision / recall / F1, threshold sweeps, and the protocol of every number."""
