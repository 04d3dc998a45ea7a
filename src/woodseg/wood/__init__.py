"""The paper's contribution alone: centres of in-distribution classes and OoD clusters, and the losses."""

from woodseg.wood.centres import Centres, class_means, kmeans_centres, predicted_class_centres
from woodseg.wood.losses import distance_loss, official_distance_loss

__all__ = ["Centres", "class_means", "distance_loss", "kmeans_centres", "official_distance_loss",
           "predicted_class_centres"]
