"""The segmentation network trained on pseudo masks (DeepLab-v2): input pipeline, training, inference."""
