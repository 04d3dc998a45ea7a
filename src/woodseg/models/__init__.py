"""Networks: torchvision ResNet backbones with IRN's strides, and the CAM classifier."""

from woodseg.models.cam_net import CamNet, build_cam_net, load_classifier

__all__ = ["CamNet", "build_cam_net", "load_classifier"]
