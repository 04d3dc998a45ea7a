"""Hard-OoD collection (paper Sec. 3.1): candidate pools, ranking by p(c), browser review, export.

Modules, one job each: ``mapping`` (target class -> OpenImages labels), ``openimages`` (pools from label
CSVs), ``pool`` (pool files, folder pools), ``scoring`` (p(c) in process), ``candidates`` (threshold and
rank per class), ``rank`` (resumable, sharded ranking on disk and merge), ``flags`` and ``ordering``
(cheaper review), ``review`` (the store and the web app), ``export`` (ood_list.txt and manifest),
``simulate`` (the review done by a truth oracle). The user guide is docs/ood-collection.md.
"""
